use std::net::{IpAddr, SocketAddr};

use super::*;

#[test]
fn classifies_addresses() {
    let table: &[(&str, Option<&str>)] = &[
        ("127.0.0.1", Some("loopback")),
        ("127.255.0.9", Some("loopback")),
        ("10.1.2.3", Some("private")),
        ("172.16.0.1", Some("private")),
        ("172.31.255.255", Some("private")),
        ("172.32.0.1", None),
        ("192.168.1.1", Some("private")),
        ("169.254.169.254", Some("link-local")),
        ("100.64.0.1", Some("shared (CGNAT)")),
        ("100.127.255.255", Some("shared (CGNAT)")),
        ("100.128.0.1", None),
        ("0.0.0.0", Some("unspecified")),
        ("0.1.2.3", Some("unspecified")),
        ("255.255.255.255", Some("broadcast")),
        ("224.0.0.1", Some("multicast")),
        ("239.255.255.250", Some("multicast")),
        ("240.0.0.1", Some("reserved")),
        ("8.8.8.8", None),
        ("23.227.38.65", None),
        ("::", Some("unspecified")),
        ("::1", Some("loopback")),
        ("fc00::1", Some("private")),
        ("fd12:3456::1", Some("private")),
        ("fe80::1", Some("link-local")),
        ("febf::1", Some("link-local")),
        ("fec0::1", Some("private")),
        ("ff02::1", Some("multicast")),
        ("::ffff:127.0.0.1", Some("loopback")),
        ("::ffff:169.254.169.254", Some("link-local")),
        ("::ffff:10.0.0.1", Some("private")),
        ("::ffff:8.8.8.8", None),
        ("::127.0.0.1", Some("loopback")),
        ("64:ff9b::a9fe:a9fe", Some("link-local")),
        ("64:ff9b::808:808", None),
        ("2606:4700::1111", None),
        ("2001:4860:4860::8888", None),
    ];
    for (ip, want) in table {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(classify(parsed), *want, "{ip}");
        assert_eq!(is_forbidden(parsed), want.is_some(), "{ip}");
    }
}

#[test]
fn refusal_names_the_setting() {
    let e = TargetPolicy::PUBLIC_ONLY
        .check_ip("localhost", "127.0.0.1".parse().unwrap())
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("SHIPSYNC_ALLOW_PRIVATE_TARGETS=true"),
        "{text}"
    );
    assert!(text.contains("--allow-private-targets"), "{text}");
    assert!(text.contains("loopback"), "{text}");
    assert!(
        TargetPolicy::ALLOW_PRIVATE
            .check_ip("x", "127.0.0.1".parse().unwrap())
            .is_ok()
    );
}

#[tokio::test]
async fn saving_checks_literals_and_names() {
    let strict = TargetPolicy::PUBLIC_ONLY;
    for url in [
        "http://127.0.0.1:5432/",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let url = Url::parse(url).unwrap();
        assert!(check_target(strict, &url).await.is_err(), "{url}");
        assert!(
            check_target(TargetPolicy::ALLOW_PRIVATE, &url)
                .await
                .is_ok(),
            "{url}"
        );
    }
    let public = Url::parse("https://8.8.8.8/").unwrap();
    assert!(check_target(strict, &public).await.is_ok());
}

/// A loopback server answering every connection with `answer`, for as many
/// connections as come.
async fn serve(answer: String) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

fn ok_answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn strict_client_refuses_loopback_by_name_and_by_literal() {
    let addr = serve(ok_answer("hello")).await;
    let strict = client_builder(TargetPolicy::PUBLIC_ONLY).build().unwrap();
    for url in [
        format!("http://127.0.0.1:{}/", addr.port()),
        format!("http://localhost:{}/", addr.port()),
    ] {
        let e = strict.get(&url).send().await.unwrap_err();
        let refused = refusal(&e).unwrap_or_else(|| panic!("{url}: not a refusal: {e:?}"));
        assert!(refused.to_string().contains(SETTING), "{refused}");
    }
    let open = client_builder(TargetPolicy::ALLOW_PRIVATE).build().unwrap();
    let answer = open
        .get(format!("http://127.0.0.1:{}/", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    let target = serve(ok_answer("secret place")).await;
    // 127.0.0.1 and localhost are different hosts, as are two ports.
    for location in [
        format!("http://localhost:{}/", target.port()),
        format!("http://127.0.0.1:{}/", target.port()),
    ] {
        let redirector = serve(format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ))
        .await;
        let client = client_builder(TargetPolicy::ALLOW_PRIVATE).build().unwrap();
        let answer = client
            .get(format!("http://127.0.0.1:{}/start", redirector.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 302, "{location}");
    }
}

#[tokio::test]
async fn same_origin_redirects_are_followed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let answer = if head.starts_with("GET /start") {
                    "HTTP/1.1 302 Found\r\nlocation: /end\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
                } else {
                    ok_answer("arrived")
                };
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    let client = client_builder(TargetPolicy::ALLOW_PRIVATE).build().unwrap();
    let answer = client
        .get(format!("http://127.0.0.1:{}/start", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "arrived");
}

#[tokio::test]
async fn bodies_are_capped() {
    let small = serve(ok_answer("0123456789")).await;
    let client = client_builder(TargetPolicy::ALLOW_PRIVATE).build().unwrap();
    let url = format!("http://127.0.0.1:{}/", small.port());
    let body = read_capped(client.get(&url).send().await.unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(body, b"0123456789");
    let e = read_capped(client.get(&url).send().await.unwrap(), 9)
        .await
        .unwrap_err();
    assert!(matches!(e, BodyError::TooLarge { max: 9 }), "{e}");
    // Without a length announced, the cap still holds while reading.
    let chunked = serve(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\na\r\n0123456789\r\n0\r\n\r\n"
            .to_string(),
    )
    .await;
    let e = read_capped(
        client
            .get(format!("http://127.0.0.1:{}/", chunked.port()))
            .send()
            .await
            .unwrap(),
        9,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, BodyError::TooLarge { max: 9 }), "{e}");
}
