//! How an agent's admin subcommands (`facteur-mta queue …`, `facteur-mda user …`)
//! reach the running agent: its own gRPC listener (`grpc.listen`), a wildcard
//! bind reached on loopback. The admin services are privileged; they are
//! served on that listener only, so whatever protects it protects them.
//! Every admin client channel is made here: the one place that picks its transport.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tonic::transport::Channel;

use crate::grpc::{self, GrpcError, GrpcTls};

/// The address to dial for a listener bound to `listen`: `0.0.0.0` becomes
/// `127.0.0.1`, `[::]` becomes `[::1]`; a host name is kept.
pub fn dial_address(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            addr.to_string()
        }
        Err(_) => listen.to_owned(),
    }
}

/// The URL of the agent's own gRPC listener bound to `listen`.
pub fn url(listen: &str) -> String {
    format!("http://{}", dial_address(listen))
}

/// A channel to the agent listening on `listen`, with the agent's own
/// `[grpc_tls]` identity when set (its listener then requires a client certificate).
pub fn channel(listen: &str, tls: &GrpcTls) -> Result<Channel, GrpcError> {
    grpc::local_channel(listen, tls)
}

/// Is anything accepting connections on `listen`? False only when the
/// connection is refused (nothing listens: the agent is not running); any other
/// outcome counts as running, so the gRPC call reports the real problem.
pub async fn listening(listen: &str) -> bool {
    let addr = dial_address(listen);
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    {
        Ok(Ok(_)) | Err(_) => true,
        Ok(Err(e)) => e.kind() != std::io::ErrorKind::ConnectionRefused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_dialled_on_loopback() {
        assert_eq!(url("0.0.0.0:7025"), "http://127.0.0.1:7025");
        assert_eq!(url("[::]:7025"), "http://[::1]:7025");
        assert_eq!(url("127.9.0.2:7024"), "http://127.9.0.2:7024");
        assert_eq!(url("mta.internal:7025"), "http://mta.internal:7025");
    }

    #[tokio::test]
    async fn a_closed_port_is_not_listening_an_open_one_is() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap().to_string();
        assert!(listening(&open).await);
        drop(l);
        assert!(!listening(&open).await);
    }
}
