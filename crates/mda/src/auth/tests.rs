//! The whole verification path over a real accounts tree, with the clock moved
//! by hand.

use super::*;
use crate::config::ThrottleConfig;

fn setup(config: AuthConfig) -> (tempfile::TempDir, Accounts, Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    let store = facteur_store::SledStore::open(dir.path()).unwrap();
    let accounts = Accounts::new(std::sync::Arc::new(store));
    accounts.add("pierre@paris.test", "secret").unwrap();
    let auth = Authenticator::start(accounts.clone(), &config).unwrap();
    (dir, accounts, auth)
}

fn config() -> AuthConfig {
    AuthConfig {
        workers: 2,
        throttle: ThrottleConfig {
            ip_failures: 3,
            user_failures: 5,
            window_secs: 60,
            max_entries: 100,
        },
        ..AuthConfig::default()
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

const S: Duration = Duration::from_secs(1);

#[tokio::test]
async fn right_wrong_and_unknown_and_the_cache_spares_argon2() {
    let (_d, _acc, auth) = setup(config());
    let t = Instant::now();
    let at = |user: &'static str, pw: &'static str, from: &'static str| {
        let auth = auth.clone();
        async move { auth.verify_at(user, pw, ip(from), || t).await.unwrap() }
    };
    let ok = Verdict::Ok("pierre@paris.test".into());
    assert_eq!(at("Pierre@Paris.test", "secret", "192.0.2.1").await, ok);
    assert_eq!(auth.argon2_runs(), 1);
    // the same (user, password) again: answered from the cache
    assert_eq!(at("pierre@paris.test", "secret", "192.0.2.2").await, ok);
    assert_eq!(auth.argon2_runs(), 1);
    assert_eq!(
        at("pierre@paris.test", "Secret", "192.0.2.3").await,
        Verdict::Failed
    );
    assert_eq!(auth.argon2_runs(), 2);
    // an unknown user costs one (dummy) verification, then is cached negative
    assert_eq!(
        at("ghost@paris.test", "secret", "192.0.2.4").await,
        Verdict::Failed
    );
    assert_eq!(auth.argon2_runs(), 3);
    assert_eq!(
        at("ghost@paris.test", "secret", "192.0.2.5").await,
        Verdict::Failed
    );
    assert_eq!(auth.argon2_runs(), 3);
    assert_eq!(
        at("not an address", "x", "192.0.2.6").await,
        Verdict::Failed
    );
    assert_eq!(auth.argon2_runs(), 4);
}

#[tokio::test]
async fn cached_verdicts_expire_with_their_ttl() {
    let (_d, _acc, auth) = setup(AuthConfig {
        cache_ttl_secs: 100,
        cache_negative_ttl_secs: 10,
        ..config()
    });
    let t = Instant::now();
    let v = |pw: &'static str, at: Instant| {
        let auth = auth.clone();
        async move {
            auth.verify_at("pierre@paris.test", pw, None, || at)
                .await
                .unwrap()
        }
    };
    assert!(matches!(v("secret", t).await, Verdict::Ok(_)));
    assert_eq!(v("wrong", t).await, Verdict::Failed);
    assert_eq!(auth.argon2_runs(), 2);
    assert_eq!(v("wrong", t + 9 * S).await, Verdict::Failed);
    assert!(matches!(v("secret", t + 99 * S).await, Verdict::Ok(_)));
    assert_eq!(auth.argon2_runs(), 2);
    assert_eq!(v("wrong", t + 10 * S).await, Verdict::Failed);
    assert_eq!(auth.argon2_runs(), 3, "negative entry expired");
    assert!(matches!(v("secret", t + 100 * S).await, Verdict::Ok(_)));
    assert_eq!(auth.argon2_runs(), 4, "positive entry expired");
}

#[tokio::test]
async fn passwd_and_del_drop_the_cache() {
    let (_d, _acc, auth) = setup(config());
    let now = Instant::now;
    let v = |pw: &'static str| {
        let auth = auth.clone();
        async move {
            auth.verify_at("pierre@paris.test", pw, None, now)
                .await
                .unwrap()
        }
    };
    assert!(matches!(v("secret").await, Verdict::Ok(_)));
    assert_eq!(v("new").await, Verdict::Failed);
    auth.set_password("Pierre@paris.test", "new").await.unwrap();
    assert_eq!(v("secret").await, Verdict::Failed);
    assert!(matches!(v("new").await, Verdict::Ok(_)));
    auth.delete("pierre@paris.test").await.unwrap();
    assert_eq!(v("new").await, Verdict::Failed);
    assert!(auth.set_password("pierre@paris.test", "x").await.is_err());
}

#[tokio::test]
async fn a_change_behind_the_caches_back_is_seen_too() {
    // The stored hash is part of the key: a password changed by another
    // process (or replica) never matches an old verdict.
    let (_d, acc, auth) = setup(config());
    let now = Instant::now;
    assert!(matches!(
        auth.verify_at("pierre@paris.test", "secret", None, now)
            .await
            .unwrap(),
        Verdict::Ok(_)
    ));
    acc.set_password("pierre@paris.test", "new").unwrap();
    assert_eq!(
        auth.verify_at("pierre@paris.test", "secret", None, now)
            .await
            .unwrap(),
        Verdict::Failed
    );
}

#[tokio::test]
async fn throttled_attempts_cost_no_argon2_and_the_window_ends() {
    let (_d, _acc, auth) = setup(config());
    let t = Instant::now();
    let v = |user: &'static str, pw: String, from: &'static str, at: Instant| {
        let auth = auth.clone();
        async move { auth.verify_at(user, &pw, ip(from), || at).await.unwrap() }
    };
    for i in 0..3 {
        let pw = format!("guess{i}");
        assert_eq!(
            v("pierre@paris.test", pw, "192.0.2.1", t).await,
            Verdict::Failed
        );
    }
    let runs = auth.argon2_runs();
    // the right password from that address is refused, without argon2
    assert_eq!(
        v("pierre@paris.test", "secret".into(), "192.0.2.1", t + S).await,
        Verdict::Throttled(Throttled::Ip)
    );
    assert_eq!(auth.argon2_runs(), runs);
    // from elsewhere the user is still fine (3 < 5 user failures)
    assert!(matches!(
        v("pierre@paris.test", "secret".into(), "198.51.100.1", t + S).await,
        Verdict::Ok(_)
    ));
    // after the window, the address may try again
    assert!(matches!(
        v(
            "pierre@paris.test",
            "secret".into(),
            "192.0.2.1",
            t + 60 * S
        )
        .await,
        Verdict::Ok(_)
    ));
    // per user, across addresses
    for i in 0..5 {
        let from = [
            "203.0.113.1",
            "203.0.113.2",
            "203.0.113.3",
            "203.0.113.4",
            "203.0.113.5",
        ][i];
        let pw = format!("again{i}");
        assert_eq!(
            v("pierre@paris.test", pw, from, t + 61 * S).await,
            Verdict::Failed
        );
    }
    let runs = auth.argon2_runs();
    assert_eq!(
        v(
            "pierre@paris.test",
            "secret".into(),
            "198.51.100.9",
            t + 62 * S
        )
        .await,
        Verdict::Throttled(Throttled::User)
    );
    assert_eq!(auth.argon2_runs(), runs);
    assert!(matches!(
        v(
            "pierre@paris.test",
            "secret".into(),
            "198.51.100.9",
            t + 121 * S
        )
        .await,
        Verdict::Ok(_)
    ));
}
