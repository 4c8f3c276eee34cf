//! A minimal HTTP/1.1 client for a bookie's admin API: one request per
//! connection (`Connection: close`), the answer read to its end and decoded
//! by its `Content-Length` or chunked framing. The bookie's Vert.x server
//! is all it ever talks to, so no TLS, redirects or keep-alive.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connect, send and read, all together.
const TIMEOUT: Duration = Duration::from_secs(10);
/// No admin answer is anywhere near this; more means something else answers.
const MAX_ANSWER: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {TIMEOUT:?}")]
    Timeout,
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

pub async fn get(host: &str, port: u16, path: &str) -> Result<Response, HttpError> {
    exchange(host, port, &request("GET", path, None)).await
}

pub async fn put_json(host: &str, port: u16, path: &str, json: &str) -> Result<Response, HttpError> {
    exchange(host, port, &request("PUT", path, Some(json))).await
}

/// The Host header is a fixed name: the bookie serves one site, and a pod's
/// IPv6 address would need brackets there.
fn request(method: &str, path: &str, json: Option<&str>) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: bookie\r\nConnection: close\r\nAccept: */*\r\n");
    if let Some(json) = json {
        text += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", json.len());
    }
    text + "\r\n" + json.unwrap_or_default()
}

async fn exchange(host: &str, port: u16, request: &str) -> Result<Response, HttpError> {
    let talk = async {
        let mut stream = TcpStream::connect((host, port)).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
        Ok::<_, HttpError>(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT, talk).await.map_err(|_| HttpError::Timeout)??;
    parse(&answer)
}

/// Parses a whole answer, as read up to the server's close.
fn parse(answer: &[u8]) -> Result<Response, HttpError> {
    let end = find(answer, b"\r\n\r\n").ok_or(HttpError::Malformed("no end of headers"))?;
    let head = std::str::from_utf8(&answer[..end]).map_err(|_| HttpError::Malformed("headers are not UTF-8"))?;
    let rest = &answer[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") => code.parse().ok(),
        _ => None,
    }
    .ok_or(HttpError::Malformed("no status line"))?;
    let header = |name: &str| {
        lines
            .clone()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_ascii_lowercase())
    };
    let body = if header("transfer-encoding").is_some_and(|coding| coding.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| HttpError::Malformed("bad content-length"))?;
        rest.get(..length).ok_or(HttpError::Malformed("body shorter than its content-length"))?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Decodes a chunked body: hex size lines (extensions ignored), each chunk
/// followed by CRLF, ending with a zero-size chunk (trailers ignored).
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or(HttpError::Malformed("unterminated chunk size"))?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| HttpError::Malformed("bad chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| HttpError::Malformed("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or(HttpError::Malformed("truncated chunk"))?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size..)
            .and_then(|after| after.strip_prefix(b"\r\n"))
            .ok_or(HttpError::Malformed("chunk without CRLF"))?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bookie_answer_is_cut_at_its_content_length() {
        // As the 4.17 bookie's Vert.x server writes it (seen on the wire).
        let answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 23\r\n\r\n{\n  \"readOnly\" : true\n}";
        assert_eq!(parse(answer).unwrap(), Response { status: 200, body: "{\n  \"readOnly\" : true\n}".into() });
        let longer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKextra";
        assert_eq!(parse(longer).unwrap().body, "OK");
    }

    #[test]
    fn a_chunked_answer_is_reassembled() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\nb;ext=1\r\n:1, \"b\":22}\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(parse(answer).unwrap().body, "{\"a\":1, \"b\":22}");
    }

    #[test]
    fn the_status_is_kept_for_the_caller() {
        let answer = b"HTTP/1.1 404 Not Found\r\ncontent-length: 33\r\n\r\nNo under replicated ledgers found";
        assert_eq!(parse(answer).unwrap(), Response { status: 404, body: "No under replicated ledgers found".into() });
        let http10 = b"HTTP/1.0 503 Service Unavailable\r\n\r\nnot ready";
        assert_eq!(parse(http10).unwrap(), Response { status: 503, body: "not ready".into() });
    }

    #[test]
    fn broken_answers_are_errors() {
        for broken in [
            &b""[..],
            b"garbage",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab",
        ] {
            assert!(parse(broken).is_err(), "{:?} parsed", String::from_utf8_lossy(broken));
        }
    }

    #[test]
    fn requests_are_framed() {
        let put = request("PUT", "/api/v1/bookie/state/readonly", Some("{\"readOnly\":true}"));
        assert_eq!(
            put,
            "PUT /api/v1/bookie/state/readonly HTTP/1.1\r\nHost: bookie\r\nConnection: close\r\nAccept: */*\r\n\
             Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"readOnly\":true}"
        );
        let get = request("GET", "/x", None);
        assert!(get.ends_with("Accept: */*\r\n\r\n") && !get.contains("Content-Length"), "{get}");
    }

    /// A real exchange over TCP with a server that closes after answering.
    #[tokio::test]
    async fn a_get_reads_until_the_server_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 1024];
            let read = socket.read(&mut request).await.unwrap();
            socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n{\"running\":true}").await.unwrap();
            String::from_utf8_lossy(&request[..read]).into_owned()
        });
        let response = get("127.0.0.1", port, "/api/v1/bookie/state").await.unwrap();
        assert_eq!(response, Response { status: 200, body: "{\"running\":true}".into() });
        assert!(server.await.unwrap().starts_with("GET /api/v1/bookie/state HTTP/1.1\r\n"));
    }
}
