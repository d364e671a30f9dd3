use super::*;
use crate::signing::{generate, Signer};

fn manifest(version: &str, sig: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": version,
        "notes": "n",
        "platforms": { "linux-x86_64-headless-deb": { "url": "https://u/p.deb", "signature": sig } }
    }))
    .unwrap()
}

struct Keys {
    signer: Signer,
    key: UpdateKey,
}

fn keys() -> Keys {
    let g = generate(None).unwrap();
    Keys { signer: Signer::new(&g.secret, None).unwrap(), key: UpdateKey::parse(&g.public).unwrap() }
}

#[test]
fn a_signed_newer_offer_is_accepted_and_its_file_verifies() {
    let k = keys();
    let file = b"package bytes";
    let file_sig = k.signer.sign("p.deb", file).unwrap();
    let m = manifest("0.2.0", &file_sig);
    let msig = k.signer.sign("stable.json", &m).unwrap();
    let running = parse_version("0.1.0").unwrap();
    let offer = k.key.check_manifest(&m, &msig, &running, "linux-x86_64-headless-deb").unwrap();
    assert_eq!(offer.version, parse_version("0.2.0").unwrap());
    k.key.verify("p.deb", file, &offer.signature).unwrap();
    // A swapped file: same signature, other bytes.
    assert!(matches!(k.key.verify("p.deb", b"other bytes", &offer.signature), Err(UpdateError::NotSigned { .. })));
}

#[test]
fn tampered_manifest_other_key_downgrade_and_replay_are_refused() {
    let k = keys();
    let other = keys();
    let running = parse_version("0.2.0").unwrap();
    let target = "linux-x86_64-headless-deb";
    let m = manifest("0.3.0", "x");
    let msig = k.signer.sign("stable.json", &m).unwrap();
    // Tampered: one byte of the signed manifest changed.
    let tampered = manifest("0.9.0", "x");
    assert!(matches!(k.key.check_manifest(&tampered, &msig, &running, target), Err(UpdateError::NotSigned { .. })));
    // Signed with another key.
    let osig = other.signer.sign("stable.json", &m).unwrap();
    assert!(matches!(k.key.check_manifest(&m, &osig, &running, target), Err(UpdateError::NotSigned { .. })));
    // Downgrade and same version (a replayed old manifest).
    for v in ["0.1.9", "0.2.0"] {
        let m = manifest(v, "x");
        let s = k.signer.sign("stable.json", &m).unwrap();
        assert!(matches!(k.key.check_manifest(&m, &s, &running, target), Err(UpdateError::NotNewer { .. })), "{v}");
    }
    // No package for this machine.
    assert!(matches!(k.key.check_manifest(&m, &msig, &running, "windows-x86_64"), Err(UpdateError::NoPackage(_))));
    // Garbage signature.
    assert!(matches!(k.key.check_manifest(&m, "not a signature", &running, target), Err(UpdateError::BadSignature { .. })));
}

#[test]
fn keys_parse_in_every_spelling_and_encrypted_keys_need_their_password() {
    let g = generate(Some("pw".into())).unwrap();
    assert!(Signer::new(&g.secret, Some("wrong".into())).is_err());
    let s = Signer::new(&g.secret, Some("pw".into())).unwrap();
    let sig = s.sign("f", b"x").unwrap();
    let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&g.public).unwrap()).unwrap();
    let bare = text.lines().nth(1).unwrap().to_string();
    for spelling in [g.public.clone(), text, bare] {
        UpdateKey::parse(&spelling).unwrap().verify("f", b"x", &sig).unwrap();
    }
    assert!(matches!(UpdateKey::parse("nonsense"), Err(UpdateError::BadKey(_))));
}
