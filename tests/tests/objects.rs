//! Objects: classes, token and session objects, visibility, the attribute rules, copy, set, size,
//! find, certificates parsed from their DER.

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, CertificateType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use klyuch_tests::{pin, require, rv, Fixture, USER_PIN};

fn data(s: &Session, label: &str, token: bool, private: bool) -> ObjectHandle {
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(token),
        Attribute::Private(private),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Application(b"klyuch-tests".to_vec()),
        Attribute::Value(b"some data".to_vec()),
    ])
    .unwrap()
}

fn labels(s: &Session, template: &[Attribute]) -> Vec<String> {
    let mut out: Vec<String> = s
        .find_objects(template)
        .unwrap()
        .into_iter()
        .map(
            |h| match &s.get_attributes(h, &[AttributeType::Label]).unwrap()[..] {
                [Attribute::Label(l)] => String::from_utf8_lossy(l).into_owned(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    out.sort();
    out
}

#[test]
fn private_objects_are_invisible_before_login() {
    let f = Fixture::new();
    let slot = f.init_token("vis");
    {
        let s = f.user_session(slot);
        data(&s, "public", true, false);
        data(&s, "private", true, true);
        assert_eq!(labels(&s, &[]), ["private", "public"]);
    }
    let s = f.p11().open_ro_session(slot).unwrap();
    assert_eq!(labels(&s, &[]), ["public"]);
    // Creating a private object needs a login; a token object needs a R/W session.
    let rw = f.p11().open_rw_session(slot).unwrap();
    let t = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
    ];
    assert_eq!(rv(rw.create_object(&t)), RvError::UserNotLoggedIn);
    rw.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let t = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(false),
    ];
    assert_eq!(rv(s.create_object(&t)), RvError::SessionReadOnly);
    // A session object is fine in a R/O session.
    let t = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(false),
        Attribute::Private(false),
    ];
    s.create_object(&t).unwrap();
}

#[test]
fn session_objects_live_with_their_session_and_token_objects_persist() {
    let mut f = Fixture::new();
    let slot = f.init_token("life");
    let a = f.user_session(slot);
    let b = f.p11().open_rw_session(slot).unwrap();
    data(&a, "session", false, false);
    data(&a, "token", true, false);
    assert_eq!(
        labels(&b, &[]),
        ["session", "token"],
        "session objects are visible to every session"
    );
    drop(a);
    assert_eq!(
        labels(&b, &[]),
        ["token"],
        "gone with the session that made it"
    );
    drop(b);
    f.reload();
    let slot = f.p11().get_slots_with_initialized_token().unwrap()[0];
    let s = f.p11().open_ro_session(slot).unwrap();
    assert_eq!(labels(&s, &[]), ["token"]);
}

#[test]
fn find_with_templates() {
    let f = Fixture::new();
    let slot = f.init_token("find");
    let s = f.user_session(slot);
    // Secret keys: data objects have no CKA_ID (PKCS#11 3.0 §4.5).
    for i in 0..20 {
        s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(cryptoki::object::KeyType::GENERIC_SECRET),
            Attribute::Value(vec![i as u8; 16]),
            Attribute::Token(i % 2 == 0),
            Attribute::Label(format!("obj{i:02}").into_bytes()),
            Attribute::Id(vec![i as u8 % 5]),
        ])
        .unwrap();
    }
    assert_eq!(s.find_objects(&[]).unwrap().len(), 20);
    assert_eq!(s.find_objects(&[Attribute::Token(true)]).unwrap().len(), 10);
    assert_eq!(s.find_objects(&[Attribute::Id(vec![3])]).unwrap().len(), 4);
    assert_eq!(
        labels(&s, &[Attribute::Id(vec![3]), Attribute::Token(true)]),
        ["obj08", "obj18"]
    );
    assert_eq!(
        labels(&s, &[Attribute::Label(b"obj07".to_vec())]),
        ["obj07"]
    );
    assert!(s
        .find_objects(&[Attribute::Label(b"nope".to_vec())])
        .unwrap()
        .is_empty());
    assert!(s
        .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
        .unwrap()
        .is_empty());
    assert_eq!(
        s.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Id(vec![0])
        ])
        .unwrap()
        .len(),
        4
    );
    // Private objects (secret keys are private by default) disappear after logout.
    s.logout().unwrap();
    assert!(s.find_objects(&[]).unwrap().is_empty());
}

#[test]
fn attribute_rules() {
    let f = Fixture::new();
    let slot = f.init_token("rules");
    let s = f.user_session(slot);
    let key = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
                Attribute::Label(b"aes".to_vec()),
            ],
        )
        .unwrap();
    // Not sensitive: the value can be read.
    let v = s.get_attributes(key, &[AttributeType::Value]).unwrap();
    assert!(matches!(&v[..], [Attribute::Value(x)] if x.len() == 32));
    let generated = s
        .get_attributes(
            key,
            &[
                AttributeType::Local,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::KeyGenMechanism,
            ],
        )
        .unwrap();
    assert!(generated.contains(&Attribute::Local(true)), "{generated:?}");
    assert!(generated.contains(&Attribute::AlwaysSensitive(false)));
    assert!(generated.contains(&Attribute::NeverExtractable(false)));
    // Sensitive only goes false -> true; extractable only true -> false.
    s.update_attributes(key, &[Attribute::Sensitive(true)])
        .unwrap();
    assert_eq!(
        rv(s.update_attributes(key, &[Attribute::Sensitive(false)])),
        RvError::AttributeReadOnly
    );
    assert!(matches!(
        s.get_attribute_info(key, &[AttributeType::Value]).unwrap()[..],
        [AttributeInfo::Sensitive]
    ));
    // (cryptoki leaves out what C_GetAttributeValue calls sensitive.)
    assert!(s
        .get_attributes(key, &[AttributeType::Value])
        .unwrap()
        .is_empty());
    s.update_attributes(key, &[Attribute::Extractable(false)])
        .unwrap();
    assert_eq!(
        rv(s.update_attributes(key, &[Attribute::Extractable(true)])),
        RvError::AttributeReadOnly
    );
    // Modifiable attributes change, others are read-only; the token maintains CKA_LOCAL.
    s.update_attributes(
        key,
        &[
            Attribute::Label(b"renamed".to_vec()),
            Attribute::Id(vec![7]),
        ],
    )
    .unwrap();
    assert_eq!(
        rv(s.update_attributes(key, &[Attribute::Local(false)])),
        RvError::AttributeReadOnly
    );
    assert_eq!(
        rv(s.update_attributes(key, &[Attribute::Class(ObjectClass::DATA)])),
        RvError::AttributeReadOnly
    );
    assert_eq!(
        rv(s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(cryptoki::object::KeyType::GENERIC_SECRET),
            Attribute::Value(vec![1; 16]),
            Attribute::Local(true)
        ])),
        RvError::AttributeReadOnly
    );
    // A non-modifiable object refuses C_SetAttributeValue.
    let fixed = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Modifiable(false),
            Attribute::Label(b"x".to_vec()),
        ])
        .unwrap();
    assert_eq!(
        rv(s.update_attributes(fixed, &[Attribute::Label(b"y".to_vec())])),
        RvError::ActionProhibited
    );
    // Bad templates.
    assert_eq!(
        rv(s.create_object(&[Attribute::Label(b"no class".to_vec())])),
        RvError::TemplateIncomplete
    );
    assert_eq!(
        rv(s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Token(false)
        ])),
        RvError::TemplateInconsistent
    );
    assert_eq!(
        rv(s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::ModulusBits(2048.into())
        ])),
        RvError::AttributeTypeInvalid
    );
}

#[test]
fn copy_object_and_sizes() {
    let f = Fixture::new();
    let slot = f.init_token("copy");
    let s = f.user_session(slot);
    let o = data(&s, "orig", false, false);
    let c = s
        .copy_object(
            o,
            &[Attribute::Token(true), Attribute::Label(b"copy".to_vec())],
        )
        .unwrap();
    assert_eq!(labels(&s, &[Attribute::Token(true)]), ["copy"]);
    let v = s
        .get_attributes(c, &[AttributeType::Value, AttributeType::Application])
        .unwrap();
    assert_eq!(
        v,
        vec![
            Attribute::Value(b"some data".to_vec()),
            Attribute::Application(b"klyuch-tests".to_vec())
        ]
    );
    let nc = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Copyable(false),
            Attribute::Label(b"nc".to_vec()),
        ])
        .unwrap();
    assert_eq!(rv(s.copy_object(nc, &[])), RvError::ActionProhibited);
    let nd = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Destroyable(false),
            Attribute::Label(b"nd".to_vec()),
        ])
        .unwrap();
    assert_eq!(rv(s.destroy_object(nd)), RvError::ActionProhibited);
    s.destroy_object(c).unwrap();
    assert_eq!(rv(s.destroy_object(c)), RvError::ObjectHandleInvalid);
    assert_eq!(
        rv(s.get_attributes(c, &[AttributeType::Label])),
        RvError::ObjectHandleInvalid
    );
}

#[test]
fn certificates_take_their_attributes_from_the_der() {
    require!("openssl");
    let f = Fixture::new();
    let key = f.path("k.pem");
    let cert = f.path("c.der");
    f.run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-subj",
            "/CN=Klyuch Cert Test/O=Klyuch",
            "-days",
            "30",
            "-set_serial",
            "4660",
            "-outform",
            "DER",
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    let der = std::fs::read(&cert).unwrap();
    let slot = f.init_token("certs");
    let s = f.user_session(slot);
    let h = s
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(b"cert".to_vec()),
            Attribute::Value(der.clone()),
        ])
        .unwrap();
    let a = s
        .get_attributes(
            h,
            &[
                AttributeType::Subject,
                AttributeType::Issuer,
                AttributeType::SerialNumber,
                AttributeType::StartDate,
                AttributeType::EndDate,
            ],
        )
        .unwrap();
    let subject = match &a[0] {
        Attribute::Subject(x) => x.clone(),
        o => panic!("{o:?}"),
    };
    // The subject DER contains the CN text; issuer == subject for a self-signed certificate.
    assert!(subject.windows(16).any(|w| w == b"Klyuch Cert Test"));
    assert_eq!(a[1], Attribute::Issuer(subject));
    // Serial 4660 = 0x1234, as a DER INTEGER.
    assert_eq!(a[2], Attribute::SerialNumber(vec![0x02, 0x02, 0x12, 0x34]));
    assert!(matches!(a[3], Attribute::StartDate(d) if !d.is_empty()));
    assert!(matches!(a[4], Attribute::EndDate(d) if !d.is_empty()));
    // A certificate needs a value that parses.
    assert_eq!(
        rv(s.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Value(b"not a certificate".to_vec()),
        ])),
        RvError::AttributeValueInvalid
    );
}
