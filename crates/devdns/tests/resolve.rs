//! End-to-end: spawn the dev DNS server on 127.0.0.1:0 and query it with hickory-resolver and raw messages.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use facteur_devdns::{Zone, spawn};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn zones() -> Vec<Zone> {
    vec![
        "paris.test=127.0.0.2".parse().unwrap(),
        Zone {
            domain: "lyon.test".to_owned(),
            ip: Ipv4Addr::new(127, 0, 0, 3),
        },
    ]
}

fn resolver(addr: SocketAddr, protocol: Protocol) -> Resolver<TokioConnectionProvider> {
    let mut config = ResolverConfig::from_parts(None, vec![], vec![]);
    config.add_name_server(NameServerConfig::new(addr, protocol));
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    opts.attempts = 1;
    opts.timeout = Duration::from_secs(5);
    Resolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(opts)
        .build()
}

async fn check_records(resolver: &Resolver<TokioConnectionProvider>) {
    let mx = resolver.mx_lookup("paris.test.").await.unwrap();
    let mx: Vec<_> = mx
        .iter()
        .map(|m| (m.preference(), m.exchange().to_string()))
        .collect();
    assert_eq!(mx, vec![(10, "mail.paris.test.".to_owned())]);

    let a = resolver.ipv4_lookup("mail.paris.test.").await.unwrap();
    let a: Vec<Ipv4Addr> = a.iter().map(|a| a.0).collect();
    assert_eq!(a, vec![Ipv4Addr::new(127, 0, 0, 2)]);

    let a = resolver.ipv4_lookup("lyon.test.").await.unwrap();
    let a: Vec<Ipv4Addr> = a.iter().map(|a| a.0).collect();
    assert_eq!(a, vec![Ipv4Addr::new(127, 0, 0, 3)]);

    let txt = resolver.txt_lookup("paris.test.").await.unwrap();
    let txt: Vec<String> = txt.iter().map(|t| t.to_string()).collect();
    assert_eq!(txt, vec!["v=spf1 ip4:127.0.0.2 -all".to_owned()]);

    let mx = resolver.mx_lookup("lyon.test.").await.unwrap();
    assert_eq!(
        mx.iter().next().unwrap().exchange().to_string(),
        "mail.lyon.test."
    );

    let err = resolver
        .ipv4_lookup("nobody.paris.test.")
        .await
        .unwrap_err();
    assert!(err.is_nx_domain(), "expected NXDOMAIN, got {err:?}");
}

#[tokio::test]
async fn resolves_over_udp() {
    let (addr, handle, stop) = spawn("127.0.0.1:0".parse().unwrap(), zones())
        .await
        .unwrap();
    assert_ne!(addr.port(), 0);
    check_records(&resolver(addr, Protocol::Udp)).await;
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn resolves_over_tcp() {
    let (addr, handle, stop) = spawn("127.0.0.1:0".parse().unwrap(), zones())
        .await
        .unwrap();
    check_records(&resolver(addr, Protocol::Tcp)).await;
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new();
    msg.set_id(0x4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    msg.to_bytes().unwrap()
}

async fn ask_udp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&query(name, rtype), addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let msg = Message::from_bytes(&buf[..n]).unwrap();
    assert_eq!(msg.id(), 0x4242);
    msg
}

#[tokio::test]
async fn raw_answers_codes_and_flags() {
    let (addr, handle, stop) = spawn("127.0.0.1:0".parse().unwrap(), zones())
        .await
        .unwrap();

    let outside = ask_udp(addr, "example.com.", RecordType::A).await;
    assert_eq!(outside.response_code(), ResponseCode::Refused);

    let nx = ask_udp(addr, "nobody.lyon.test.", RecordType::MX).await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert!(nx.authoritative());
    assert!(
        nx.name_servers()
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "NXDOMAIN without SOA: {nx:?}"
    );

    let mx = ask_udp(addr, "PARIS.test.", RecordType::MX).await;
    assert_eq!(mx.response_code(), ResponseCode::NoError);
    assert!(mx.authoritative());
    assert_eq!(mx.answers().len(), 1);
    assert_eq!(mx.answers()[0].ttl(), 60);
    match mx.answers()[0].data() {
        RData::MX(m) => {
            assert_eq!(m.preference(), 10);
            assert_eq!(m.exchange().to_string(), "mail.paris.test.");
        }
        other => panic!("not an MX: {other:?}"),
    }

    let soa = ask_udp(addr, "paris.test.", RecordType::SOA).await;
    assert_eq!(soa.answers().len(), 1);
    let ns = ask_udp(addr, "paris.test.", RecordType::NS).await;
    assert_eq!(ns.answers().len(), 1);

    // No data for an existing name: NOERROR, empty answer.
    let aaaa = ask_udp(addr, "mail.paris.test.", RecordType::AAAA).await;
    assert_eq!(aaaa.response_code(), ResponseCode::NoError);
    assert!(aaaa.answers().is_empty());

    // TCP, by hand: two-byte length prefix.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let q = query("mail.lyon.test.", RecordType::A);
    tcp.write_all(&u16::try_from(q.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    tcp.write_all(&q).await.unwrap();
    let len = tcp.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    tcp.read_exact(&mut buf).await.unwrap();
    let a = Message::from_bytes(&buf).unwrap();
    match a.answers()[0].data() {
        RData::A(a) => assert_eq!(a.0, Ipv4Addr::new(127, 0, 0, 3)),
        other => panic!("not an A: {other:?}"),
    }

    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn serve_stops_on_shutdown_future() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(facteur_devdns::serve(
        "127.0.0.1:0".parse().unwrap(),
        zones(),
        async move {
            let _ = rx.await;
        },
    ));
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn rejects_duplicate_zones() {
    let mut z = zones();
    z.push("paris.test.=127.0.0.9".parse().unwrap());
    assert!(spawn("127.0.0.1:0".parse().unwrap(), z).await.is_err());
}
