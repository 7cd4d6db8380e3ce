//! Sending to a real SMTP server: aiosmtpd (Python), started per test by `smtp_server.py`.
//!
//! Without aiosmtpd (see `support`), the tests that need the server print "skipped: aiosmtpd
//! not available" and pass; those without one (nothing listening, a silent server) always run.

use flowgate_mailer::{Email, EmailAttachment, Mailer, Security, SendError, SmtpConfig};
use mail_parser::MimeHeaders;
use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

mod support;

use support::{TestServer, addresses, free_port, parse, simple_email};

#[tokio::test]
async fn delivers_text_html_and_attachments_with_bcc_only_in_the_envelope() {
    let Some(server) = TestServer::start(&[]) else { return };
    let mailer = Mailer::new(server.config()).unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let notes = "Grüße aus Köln\r\nzweite Zeile\n".as_bytes().to_vec();
    let email = Email {
        to: vec!["Ann Älter <ann@example.org>".into(), "bob@example.net".into()],
        cc: vec!["\"Çarol, the boss\" <carol@example.com>".into()],
        bcc: vec!["dave@hidden.example".into()],
        reply_to: Some("support@example.com".into()),
        subject: "Bericht für Jörg — 今日は ✓ and a long enough subject to need folding across lines".into(),
        text: Some("Hallo Jörg,\n\nder Bericht ist da. 你好!\n.\n..leading dots survive\n".into()),
        html: Some("<p>Hallo <b>Jörg</b>, 你好!</p>".into()),
        attachments: vec![
            EmailAttachment {
                filename: "notizen.txt".into(),
                content_type: "text/plain".into(),
                content: notes.clone(),
            },
            EmailAttachment {
                filename: "daten ü.bin".into(),
                content_type: "application/octet-stream".into(),
                content: binary.clone(),
            },
        ],
        headers: vec![("X-Flowgate-Execution".into(), "exec-0192".into())],
        ..Default::default()
    };

    let message_id = mailer.send(&email).await.expect("sent");

    let received = server.received(1).pop().unwrap();
    assert_eq!(received.mail_from, "flows@example.com");
    let mut rcpt = received.rcpt_tos.clone();
    rcpt.sort();
    assert_eq!(rcpt, ["ann@example.org", "bob@example.net", "carol@example.com", "dave@hidden.example"]);

    let raw_text = String::from_utf8(received.raw.clone()).expect("7-bit clean");
    let head = raw_text.split("\r\n\r\n").next().unwrap();
    assert!(!head.to_ascii_lowercase().contains("bcc:"), "{head}");
    assert!(!raw_text.contains("dave@hidden.example"), "bcc appears nowhere in the message");

    let m = parse(&received.raw);
    assert_eq!(m.subject(), Some(email.subject.as_str()));
    assert_eq!(m.message_id().map(|id| format!("<{id}>")), Some(message_id));
    assert!(m.date().is_some());
    let from = m.from().unwrap().first().unwrap();
    assert_eq!((from.name(), from.address()), (Some("Flowgate"), Some("flows@example.com")));
    assert_eq!(addresses(m.to()), ["ann@example.org", "bob@example.net"]);
    assert_eq!(m.to().unwrap().first().unwrap().name(), Some("Ann Älter"));
    assert_eq!(addresses(m.cc()), ["carol@example.com"]);
    assert_eq!(m.cc().unwrap().first().unwrap().name(), Some("Çarol, the boss"));
    assert!(m.bcc().is_none());
    assert_eq!(addresses(m.reply_to()), ["support@example.com"]);
    assert_eq!(m.header_raw("X-Flowgate-Execution").map(str::trim), Some("exec-0192"));
    let root = m.root_part().content_type().unwrap();
    assert_eq!((root.ctype(), root.subtype()), ("multipart", Some("mixed")));

    assert_eq!(
        m.body_text(0).unwrap().replace("\r\n", "\n"),
        "Hallo Jörg,\n\nder Bericht ist da. 你好!\n.\n..leading dots survive\n"
    );
    assert_eq!(m.body_html(0).unwrap(), "<p>Hallo <b>Jörg</b>, 你好!</p>");
    assert_eq!(m.attachment_count(), 2);
    let first = m.attachment(0).unwrap();
    assert_eq!(first.attachment_name(), Some("notizen.txt"));
    assert_eq!(first.contents(), notes.as_slice(), "the text attachment is byte-exact");
    let second = m.attachment(1).unwrap();
    assert_eq!(second.attachment_name(), Some("daten ü.bin"));
    assert_eq!(second.contents(), binary.as_slice(), "the binary attachment is byte-exact");
}

#[tokio::test]
async fn reuses_one_mailer_for_sequential_and_concurrent_sends() {
    let Some(server) = TestServer::start(&[]) else { return };
    let mailer = Mailer::new(server.config()).unwrap();
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(mailer.send(&simple_email(&format!("seq{i}@example.org"))).await.unwrap());
    }
    let sends = (0..3).map(|i| {
        let mailer = mailer.clone();
        tokio::spawn(async move { mailer.send(&simple_email(&format!("par{i}@example.org"))).await })
    });
    for handle in sends.collect::<Vec<_>>() {
        ids.push(handle.await.unwrap().unwrap());
    }
    server.received(5);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every message has its own id");
}

#[tokio::test]
async fn logs_in_with_plain_and_with_login() {
    for (exclude, mechanism) in [("", "PLAIN"), ("PLAIN", "LOGIN")] {
        let Some(server) = TestServer::start(&["--auth", "flows@example.com:s3cr3t pä$$", "--auth-exclude", exclude])
        else {
            return;
        };
        let mut config = server.config();
        config.username = Some("flows@example.com".into());
        config.password = Some("s3cr3t pä$$".into());
        Mailer::new(config).unwrap().send(&simple_email("ann@example.org")).await.expect("logged in and sent");
        assert_eq!(server.received(1)[0].rcpt_tos, ["ann@example.org"]);
        assert_eq!(server.auth_log(), format!("{mechanism} flows@example.com ok\n"));
    }
}

#[tokio::test]
async fn a_wrong_password_or_no_login_is_permanent() {
    let Some(server) = TestServer::start(&["--auth", "flows@example.com:right"]) else { return };
    let mut config = server.config();
    config.username = Some("flows@example.com".into());
    config.password = Some("wrong".into());
    let err = Mailer::new(config).unwrap().send(&simple_email("ann@example.org")).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert_eq!(err.code, Some(535), "{err}");
    assert!(server.auth_log().contains("fail"));

    // Without credentials the server refuses MAIL FROM: "530 authentication required".
    let err = Mailer::new(server.config()).unwrap().send(&simple_email("ann@example.org")).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert_eq!(err.code, Some(530), "{err}");
    assert_eq!(server.received_count(), 0);
}

#[tokio::test]
async fn a_4xx_reply_to_data_is_retryable_and_a_5xx_is_not() {
    for (reply, code, retryable) in
        [("451 4.3.0 Try again later", 451, true), ("550 5.7.1 Message rejected as spam", 550, false)]
    {
        let Some(server) = TestServer::start(&["--data-reply", reply]) else { return };
        let mailer = Mailer::new(server.config()).unwrap();
        let err: SendError = mailer.send(&simple_email("ann@example.org")).await.unwrap_err();
        assert_eq!(err.code, Some(code), "{err}");
        assert_eq!(err.retryable, retryable, "{err}");
        assert!(err.message.contains(&format!("127.0.0.1:{}", server.port)), "{err}");
        assert!(err.message.contains(&reply[4..]), "the server's words are kept: {err}");
        // The failed connection is not reused in a bad state: the next send fails the same way.
        let again = mailer.send(&simple_email("ann@example.org")).await.unwrap_err();
        assert_eq!(again.code, Some(code), "{again}");
    }
}

#[tokio::test]
async fn nothing_listening_is_retryable_and_quick() {
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port: free_port(),
        security: Security::None,
        username: None,
        password: None,
        from: "flows@example.com".into(),
        timeout_ms: Some(1_000),
    };
    let started = Instant::now();
    let err = Mailer::new(config).unwrap().send(&simple_email("ann@example.org")).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert_eq!(err.code, None);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_retryable() {
    // Accepts the connection and then says nothing: lettre's own timeout covers only
    // connecting, so this is the send deadline at work.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        username: None,
        password: None,
        from: "flows@example.com".into(),
        timeout_ms: Some(500),
    };
    let mailer = Mailer::new(config).unwrap();
    let started = Instant::now();
    let err = mailer.send(&simple_email("ann@example.org")).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("timed out after 500 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    drop(mailer);
    // The dropped connection lets the holder thread finish.
    holder.join().unwrap();
}

#[tokio::test]
async fn bad_addresses_fail_before_connecting() {
    // Nothing listens there: had the mailer tried to connect, the error would be a retryable
    // connection error instead.
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port: free_port(),
        security: Security::None,
        username: None,
        password: None,
        from: "flows@example.com".into(),
        timeout_ms: Some(1_000),
    };
    let mailer = Mailer::new(config).unwrap();
    let mut email = simple_email("ann@example.org");
    email.cc = vec!["ok@example.org; not-an-address".into()];
    let err = mailer.send(&email).await.unwrap_err();
    assert!(!err.retryable);
    assert!(err.message.contains("`not-an-address` in cc"), "{err}");
}

#[tokio::test]
async fn tls_settings_that_do_not_fit_the_server_are_permanent() {
    let Some(server) = TestServer::start(&[]) else { return };
    // Implicit TLS to a port that speaks plain SMTP: the handshake reads "220 …" and fails.
    let mut config = server.config();
    config.security = Security::Tls;
    let err = Mailer::new(config).unwrap().send(&simple_email("ann@example.org")).await.unwrap_err();
    println!("TLS: {err:?}");
    assert!(!err.retryable, "{err}");
    // STARTTLS required, but this server does not offer it: nothing is sent in the clear.
    let mut config = server.config();
    config.security = Security::StartTls;
    let err = Mailer::new(config).unwrap().send(&simple_email("ann@example.org")).await.unwrap_err();
    println!("STARTTLS: {err:?}");
    assert!(!err.retryable, "{err}");
    assert!(err.message.contains("STARTTLS"), "{err}");
    assert_eq!(server.received_count(), 0);
}
