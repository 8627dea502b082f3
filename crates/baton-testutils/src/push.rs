//! A Web Push service stand-in on 127.0.0.1, as a browser's push service
//! (FCM, Mozilla's autopush) takes messages: `POST /push/<id>` with
//! `Content-Encoding: aes128gcm` (RFC 8291), a `TTL`, and `Authorization:
//! vapid t=<JWT>, k=<key>` (RFC 8292). It refuses what they refuse (a
//! token that does not verify with its key, or names another audience or
//! has run out: 403; a body that does not decrypt: 400), answers 410 for a
//! subscription made gone, and keeps each message decrypted with the
//! subscription's own keys, as the browser would read it.

use crate::http::{Outcome, Request, Response, StandIn};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A browser's subscription: what `PushSubscription.toJSON()` gives, and
/// the private half only the browser has.
#[derive(Clone)]
struct Sub {
    private: Vec<u8>,
    public: Vec<u8>,
    auth: Vec<u8>,
    gone: bool,
}

/// A delivered message: its subscription's number, its payload (decrypted,
/// as JSON) and the request's headers.
pub type Delivered = (usize, Value, Vec<(String, String)>);

#[derive(Default)]
struct State {
    subs: Vec<Sub>,
    /// (subscription, decrypted payload, request headers).
    messages: Vec<Delivered>,
}

pub struct PushService {
    pub url: String,
    state: Arc<Mutex<State>>,
    _server: StandIn,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PushService {
    pub fn start() -> PushService {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        // The origin is known once bound: the handler reads it then.
        let origin = Arc::new(std::sync::OnceLock::<String>::new());
        let seen = origin.clone();
        let server = StandIn::start(move |req| {
            handle(&shared, seen.get().map(String::as_str).unwrap_or(""), req)
        });
        let _ = origin.set(server.url.clone());
        PushService {
            url: server.url.clone(),
            state,
            _server: server,
        }
    }

    /// A new subscription, as a browser's `PushSubscription.toJSON()`.
    pub fn subscribe(&self) -> Value {
        let rng = SystemRandom::new();
        let (private, public) = loop {
            let mut private = vec![0u8; 32];
            rng.fill(&mut private).expect("random");
            if let Some(public) = public_of(&private) {
                break (private, public);
            }
        };
        let mut auth = vec![0u8; 16];
        rng.fill(&mut auth).expect("random");
        let mut st = lock(&self.state);
        st.subs.push(Sub {
            private,
            public: public.clone(),
            auth: auth.clone(),
            gone: false,
        });
        let n = st.subs.len() - 1;
        json!({ "endpoint": format!("{}/push/{n}", self.url), "keys": { "p256dh": b64url(&public), "auth": b64url(&auth) } })
    }

    /// From now on the push service answers 410 Gone for subscription `n`.
    pub fn make_gone(&self, n: usize) {
        if let Some(s) = lock(&self.state).subs.get_mut(n) {
            s.gone = true;
        }
    }

    /// Every message delivered: its subscription's number, its payload
    /// (decrypted, as JSON) and the request's headers.
    pub fn messages(&self) -> Vec<Delivered> {
        lock(&self.state).messages.clone()
    }
}

/// A P-256 private key used as given (a fixed "random" source makes ring's
/// key generation take these bytes).
#[allow(deprecated)]
fn key_of(private: &[u8]) -> Option<EphemeralPrivateKey> {
    let rng = ring::test::rand::FixedSliceRandom { bytes: private };
    EphemeralPrivateKey::generate(&ECDH_P256, &rng).ok()
}

fn public_of(private: &[u8]) -> Option<Vec<u8>> {
    Some(
        key_of(private)?
            .compute_public_key()
            .ok()?
            .as_ref()
            .to_vec(),
    )
}

fn fail(status: u16, reason: &str) -> Outcome {
    Outcome::Respond(Response::json(
        status,
        &json!({ "code": status, "errno": 109, "error": reason }),
    ))
}

fn handle(state: &Arc<Mutex<State>>, origin: &str, req: Request) -> Outcome {
    let Some(n) = req
        .path
        .strip_prefix("/push/")
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return fail(404, "no such subscription");
    };
    let Some(sub) = lock(state).subs.get(n).cloned() else {
        return fail(404, "no such subscription");
    };
    if sub.gone {
        return fail(410, "subscription expired");
    }
    if req.method != "POST"
        || req.header("content-encoding") != Some("aes128gcm")
        || req.header("ttl").is_none()
    {
        return fail(
            400,
            "a push is a POST with Content-Encoding: aes128gcm and a TTL",
        );
    }
    if let Err(why) = check_vapid(req.header("authorization").unwrap_or(""), origin) {
        return fail(403, &why);
    }
    let Some(plain) = decrypt(&sub, &req.body) else {
        return fail(400, "the body does not decrypt for this subscription");
    };
    let payload =
        serde_json::from_slice(&plain).unwrap_or_else(|_| json!(String::from_utf8_lossy(&plain)));
    lock(state).messages.push((n, payload, req.headers.clone()));
    Outcome::Respond(Response::json(201, &json!({})))
}

/// RFC 8292: `vapid t=<ES256 JWT>, k=<its P-256 public key>`, the JWT's
/// audience this service's origin, and unexpired for at most a day.
fn check_vapid(header: &str, origin: &str) -> Result<(), String> {
    let rest = header
        .strip_prefix("vapid ")
        .ok_or("no vapid authorization")?;
    let (t, k) = rest.split_once(", k=").ok_or("vapid needs t= and k=")?;
    let t = t.strip_prefix("t=").ok_or("vapid needs t=")?;
    let parts: Vec<&str> = t.split('.').collect();
    if parts.len() != 3 {
        return Err("the token is not a JWT".into());
    }
    let key = unb64url(k).ok_or("k is not base64url")?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = unb64url(parts[2]).ok_or("the signature is not base64url")?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, key)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "the token's signature does not verify with k")?;
    let head: Value =
        serde_json::from_slice(&unb64url(parts[0]).unwrap_or_default()).unwrap_or_default();
    let claims: Value =
        serde_json::from_slice(&unb64url(parts[1]).unwrap_or_default()).unwrap_or_default();
    if head["alg"] != "ES256" {
        return Err("the token is not ES256".into());
    }
    if claims["aud"] != origin {
        return Err(format!("the token is for {}, not {origin}", claims["aud"]));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match claims["exp"].as_u64() {
        Some(exp) if exp > now && exp <= now + 24 * 3600 => {}
        _ => return Err("the token's exp is not within the next day".into()),
    }
    if !claims["sub"]
        .as_str()
        .is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https://"))
    {
        return Err("the token's sub is not a mailto: or https: contact".into());
    }
    Ok(())
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, msg).as_ref().to_vec()
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let prk = hmac(salt, ikm);
    let mut t = info.to_vec();
    t.push(1);
    hmac(&prk, &t)[..len].to_vec()
}

/// RFC 8291 decryption, as the browser does it.
fn decrypt(sub: &Sub, body: &[u8]) -> Option<Vec<u8>> {
    let salt = body.get(..16)?;
    let idlen = *body.get(20)? as usize;
    let as_public = body.get(21..21 + idlen)?;
    let mut record = body.get(21 + idlen..)?.to_vec();
    let ecdh = agreement::agree_ephemeral(
        key_of(&sub.private)?,
        &UnparsedPublicKey::new(&ECDH_P256, as_public),
        |s| s.to_vec(),
    )
    .ok()?;
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(&sub.public);
    key_info.extend_from_slice(as_public);
    let ikm = hkdf(&sub.auth, &ecdh, &key_info, 32);
    let cek = hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", 16);
    let nonce = hkdf(salt, &ikm, b"Content-Encoding: nonce\0", 12);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).ok()?);
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(&nonce).ok()?,
            Aad::empty(),
            &mut record,
        )
        .ok()?;
    // The last record ends with its delimiter (2), then any padding (0s).
    let end = plain.iter().rposition(|b| *b != 0)?;
    (plain[end] == 2).then(|| plain[..end].to_vec())
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}
