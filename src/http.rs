//! Plain HTTP/1.0 requests, enough for the local registry's API: one
//! request per connection, the body read to its end.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A GET with extra request headers.
pub async fn get_with(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<String> {
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    exchange(address, "GET", path, &format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n")).await
}

async fn exchange(address: SocketAddr, method: &str, path: &str, request: &str) -> Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("{method} {path}: no answer within {TIMEOUT:?}"))??;
    body(&String::from_utf8_lossy(&answer)).with_context(|| format!("{method} {path}"))
}

/// The body of a 200 answer.
fn body(answer: &str) -> Result<String> {
    let (head, body) = answer.split_once("\r\n\r\n").context("an answer without headers")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("answered {status:?}: {}", body.trim());
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::body;

    #[test]
    fn only_a_200_answer_gives_its_body() {
        assert_eq!(body("HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n{\"a\":1}").unwrap(), "{\"a\":1}");
        let refused = body("HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready").unwrap_err();
        assert!(format!("{refused:#}").contains("503"), "{refused:#}");
        assert!(body("garbage").is_err());
    }
}
