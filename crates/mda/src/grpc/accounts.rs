//! `Accounts` (proto/admin.proto): add, change the password of, delete and list
//! the MDA's accounts while it runs (`facteur-mda user …`). Hashing (argon2)
//! and the store run on the blocking pool; a changed or deleted account's
//! cached verdicts are dropped at once. Privileged: served on the MDA's own
//! gRPC listener only.

use facteur_rpc::admin::accounts_server::Accounts as AccountsRpc;
use facteur_rpc::admin::{
    AccountReply, AccountRequest, ListUsersReply, ListUsersRequest, UserRequest,
};
use tonic::{Request, Response, Status};

use crate::accounts::{AccountError, Accounts, normalize_user};
use crate::auth::{AuthError, Authenticator};

/// The service over the MDA's accounts and its authenticator (for its cache).
#[derive(Clone, Debug)]
pub struct AccountsService {
    pub accounts: Accounts,
    pub auth: Authenticator,
}

fn status(e: AccountError) -> Status {
    match e {
        AccountError::NoSuchUser(_) => Status::not_found(e.to_string()),
        AccountError::UserExists(_) => Status::already_exists(e.to_string()),
        AccountError::InvalidUser(_) | AccountError::EmptyPassword => {
            Status::invalid_argument(e.to_string())
        }
        other => {
            tracing::error!(error = %other, "account change failed");
            Status::unavailable(other.to_string())
        }
    }
}

fn auth_status(e: AuthError) -> Status {
    match e {
        AuthError::Accounts(e) => status(e),
        other => {
            tracing::error!(error = %other, "account change failed");
            Status::unavailable(other.to_string())
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Status::internal("account task failed"))?
        .map_err(status)
}

fn user_of(user: &str) -> Result<String, Status> {
    normalize_user(user).map_err(status)
}

#[tonic::async_trait]
impl AccountsRpc for AccountsService {
    async fn add(
        &self,
        request: Request<AccountRequest>,
    ) -> Result<Response<AccountReply>, Status> {
        let req = request.into_inner();
        let user = user_of(&req.user)?;
        let (accounts, u) = (self.accounts.clone(), user.clone());
        blocking(move || accounts.add(&u, &req.password)).await?;
        self.auth.forget(&user);
        tracing::info!(%user, "account added");
        Ok(Response::new(AccountReply { user }))
    }

    async fn passwd(
        &self,
        request: Request<AccountRequest>,
    ) -> Result<Response<AccountReply>, Status> {
        let req = request.into_inner();
        let user = user_of(&req.user)?;
        if req.password.is_empty() {
            return Err(status(AccountError::EmptyPassword));
        }
        self.auth
            .set_password(&user, &req.password)
            .await
            .map_err(auth_status)?;
        tracing::info!(%user, "password changed");
        Ok(Response::new(AccountReply { user }))
    }

    async fn del(&self, request: Request<UserRequest>) -> Result<Response<AccountReply>, Status> {
        let user = user_of(&request.into_inner().user)?;
        self.auth.delete(&user).await.map_err(auth_status)?;
        tracing::info!(%user, "account deleted");
        Ok(Response::new(AccountReply { user }))
    }

    async fn list(&self, _: Request<ListUsersRequest>) -> Result<Response<ListUsersReply>, Status> {
        let accounts = self.accounts.clone();
        let users = blocking(move || accounts.list()).await?;
        Ok(Response::new(ListUsersReply { users }))
    }
}
