//! Web Push's cryptography: a message encrypted for one subscription as
//! RFC 8291 says (`aes128gcm`: an ephemeral P-256 key agreed with the
//! subscription's, the key and nonce derived with its auth secret, one
//! AES-128-GCM record), and the application server's VAPID identity
//! (RFC 8292: an ES256-signed JWT and the public key it is checked with).

use crate::sign::{b64url, hmac_sha256};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// The record size written in the header: one record holds any message
/// baton sends (push services take at most 4096 bytes).
const RECORD_SIZE: u32 = 4096;

/// HKDF (RFC 5869) with SHA-256, for one block of output at most.
fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let prk = hmac_sha256(salt, ikm);
    let mut t = info.to_vec();
    t.push(1);
    hmac_sha256(&prk, &t)[..len].to_vec()
}

/// Encrypts `plaintext` for the subscription whose public key is
/// `ua_public` (65 bytes, uncompressed) and auth secret `auth`, with the
/// ephemeral key and salt `rng` gives: the body a push service takes.
pub fn encrypt(
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
    rng: &dyn SecureRandom,
) -> Result<Vec<u8>, String> {
    if ua_public.len() != 65 || ua_public[0] != 4 {
        return Err("the subscription's p256dh is not an uncompressed P-256 key".into());
    }
    if auth.len() != 16 {
        return Err("the subscription's auth secret is not 16 bytes".into());
    }
    let too_big = "the message is too big for one Web Push record";
    if plaintext.len() + 1 + 16 + 86 > RECORD_SIZE as usize {
        return Err(too_big.into());
    }
    let ephemeral =
        EphemeralPrivateKey::generate(&ECDH_P256, rng).map_err(|_| "no ephemeral key")?;
    let as_public = ephemeral
        .compute_public_key()
        .map_err(|_| "no ephemeral public key")?;
    let as_public = as_public.as_ref().to_vec();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| "no salt")?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, ua_public);
    let ecdh = agreement::agree_ephemeral(ephemeral, &peer, |secret| secret.to_vec())
        .map_err(|_| "the subscription's p256dh is not a point on P-256")?;
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(&as_public);
    let ikm = hkdf(auth, &ecdh, &key_info, 32);
    let cek = hkdf(&salt, &ikm, b"Content-Encoding: aes128gcm\0", 16);
    let nonce = hkdf(&salt, &ikm, b"Content-Encoding: nonce\0", 12);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| "no content key")?);
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| "no nonce")?;
    // The last (and only) record: the plaintext, then its delimiter.
    let mut record = plaintext.to_vec();
    record.push(2);
    key.seal_in_place_append_tag(nonce, Aad::empty(), &mut record)
        .map_err(|_| too_big)?;
    let mut body = salt.to_vec();
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// The application server's VAPID key pair (PKCS#8, as kept in the store).
pub struct Vapid {
    pair: EcdsaKeyPair,
}

impl Vapid {
    /// A new key pair's PKCS#8 document.
    pub fn generate() -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| "cannot make a VAPID key".to_string())
    }

    pub fn from_pkcs8(doc: &[u8]) -> Result<Vapid, String> {
        let rng = SystemRandom::new();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc, &rng)
            .map(|pair| Vapid { pair })
            .map_err(|_| "the stored VAPID key does not read".to_string())
    }

    /// The public key browsers subscribe with (`applicationServerKey`).
    pub fn public_key(&self) -> String {
        b64url(self.pair.public_key().as_ref())
    }

    /// The `Authorization` header for a push to `endpoint`, good until
    /// `exp` (seconds since the epoch; at most a day ahead).
    pub fn authorization(&self, endpoint: &str, exp: u64, subject: &str) -> Result<String, String> {
        let aud = origin(endpoint).ok_or_else(|| format!("{endpoint:?} is not an http(s) URL"))?;
        let header = b64url(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": aud, "exp": exp, "sub": subject });
        let signed = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signed.as_bytes())
            .map_err(|_| "cannot sign the VAPID token")?;
        Ok(format!(
            "vapid t={signed}.{}, k={}",
            b64url(sig.as_ref()),
            self.public_key()
        ))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::unb64url;

    fn b(s: &str) -> Vec<u8> {
        unb64url(s).unwrap()
    }

    /// RFC 8291 §5 and Appendix A, to the byte.
    #[test]
    #[allow(deprecated)]
    fn the_rfc_8291_example_encrypts_to_the_byte() {
        let as_private = b("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw");
        let salt = b("DGv6ra1nlYgDCS1FRnbzlw");
        let rng = ring::test::rand::FixedSliceSequenceRandom {
            bytes: &[&as_private, &salt],
            current: core::cell::UnsafeCell::new(0),
        };
        let body = encrypt(
            &b("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            &b("BTBZMqHH6r4Tts7J_aSIgg"),
            b"When I grow up, I want to be a watermelon",
            &rng,
        )
        .unwrap();
        assert_eq!(
            b64url(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn bad_subscription_keys_are_refused() {
        let rng = SystemRandom::new();
        assert!(encrypt(&[4; 10], &[0; 16], b"x", &rng)
            .unwrap_err()
            .contains("p256dh"));
        assert!(encrypt(&[4; 65], &[0; 3], b"x", &rng)
            .unwrap_err()
            .contains("auth"));
        assert!(encrypt(&[4; 65], &[0; 16], b"x", &rng)
            .unwrap_err()
            .contains("not a point"));
    }

    #[test]
    fn a_vapid_token_names_the_push_service_and_is_signed() {
        let v = Vapid::from_pkcs8(&Vapid::generate().unwrap()).unwrap();
        let h = v
            .authorization(
                "https://push.example.net/w/abc",
                1_900_000_000,
                "mailto:a@b",
            )
            .unwrap();
        let (t, k) = h
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, v.public_key());
        let parts: Vec<&str> = t.split('.').collect();
        let claims: serde_json::Value = serde_json::from_slice(&b(parts[1])).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net");
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            b(k),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert!(key.verify(signed.as_bytes(), &b(parts[2])).is_ok());
        assert!(v.authorization("ftp://x/y", 1, "s").is_err());
    }
}
