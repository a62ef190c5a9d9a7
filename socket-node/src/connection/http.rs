//! The little HTTP/1.1 the node speaks itself: one request head at a time (parsed by `httparse`, capped
//! in size), a `Content-Length` body, plain responses and the WebSocket `101`. It serves the upgrades
//! of both protocols (`/ws` and `/socket.io/`) and Engine.IO long-polling; no general web server is
//! needed for that, and the connection keeps one small read buffer.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The largest request head accepted; an upgrade or a poll needs far less.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// As many headers as tungstenite's own handshake accepted (proxies add several).
const MAX_HEADERS: usize = 124;

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the request head is malformed: {0}")]
    Malformed(String),
    #[error("the request head is over {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("the body is over {0} bytes")]
    BodyTooLarge(usize),
    #[error("a body needs a Content-Length (chunked bodies are not accepted)")]
    LengthRequired,
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
}

/// One request's head; header names are lowercase.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of the header `name` (lowercase), if it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(&self.query, name)
    }

    /// Whether the request asks for a WebSocket.
    pub fn is_websocket_upgrade(&self) -> bool {
        let has_token = |header: &str, token: &str| {
            self.header(header)
                .is_some_and(|value| value.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
        };
        self.method == "GET" && has_token("connection", "upgrade") && has_token("upgrade", "websocket")
    }

    /// The bearer token of an `Authorization` header.
    pub fn bearer_token(&self) -> Option<String> {
        self.header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
    }

    /// Whether the client wants the connection closed after this exchange.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// `name`'s value in a query string, percent-decoded (`+` is a space, as forms encode it).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match bytes[index] {
            b'%' => match (hex(index + 1), hex(index + 2)) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    index += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one request head; what was read past it stays in `buffer` (a body, or a WebSocket's first
/// frames). `Ok(None)` when the client closed the connection before sending anything (the end of a
/// kept-alive connection).
pub async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<Option<Request>, HttpError> {
    loop {
        if !buffer.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(buffer) {
                Ok(httparse::Status::Complete(length)) => {
                    let request = to_request(&parsed)?;
                    buffer.drain(..length);
                    return Ok(Some(request));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(HttpError::Malformed(e.to_string())),
            }
        }
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err(HttpError::HeadTooLarge);
        }
        let start = buffer.len();
        buffer.resize(MAX_HEAD_BYTES, 0);
        let read = stream.read(&mut buffer[start..]).await;
        buffer.truncate(start + *read.as_ref().unwrap_or(&0));
        match read? {
            0 if start == 0 => return Ok(None),
            0 => return Err(HttpError::Malformed("the connection closed mid-request".into())),
            _ => {}
        }
    }
}

fn to_request(parsed: &httparse::Request<'_, '_>) -> Result<Request, HttpError> {
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = parsed
        .headers
        .iter()
        .filter_map(|header| {
            let value = std::str::from_utf8(header.value).ok()?;
            Some((header.name.to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    Ok(Request {
        method: parsed.method.unwrap_or_default().to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
    })
}

/// Reads the request's body (up to `max_bytes`), starting with what [`read_head`] left in `buffer`.
pub async fn read_body(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    request: &Request,
    max_bytes: usize,
) -> Result<Vec<u8>, HttpError> {
    if request
        .header("transfer-encoding")
        .is_some_and(|value| !value.eq_ignore_ascii_case("identity"))
    {
        return Err(HttpError::LengthRequired);
    }
    let length = match request.header("content-length") {
        Some(value) => value
            .parse::<usize>()
            .map_err(|_| HttpError::Malformed("Content-Length is not a number".into()))?,
        None => 0,
    };
    if length > max_bytes {
        return Err(HttpError::BodyTooLarge(max_bytes));
    }
    while buffer.len() < length {
        let start = buffer.len();
        buffer.resize(length, 0);
        let read = stream.read(&mut buffer[start..]).await;
        buffer.truncate(start + *read.as_ref().unwrap_or(&0));
        if read? == 0 {
            return Err(HttpError::Malformed("the connection closed mid-body".into()));
        }
    }
    Ok(buffer.drain(..length).collect())
}

/// A response to write: status, content type, extra headers and body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: String) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// The JSON error body every HTTP surface of the product uses.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
        Self::new(status, "application/json", body)
    }

    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The response's bytes; `keep_alive` false adds `Connection: close`.
    fn encode(&self, keep_alive: bool) -> String {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        if !keep_alive {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&self.body);
        out
    }

    /// Writes the response.
    pub async fn write(&self, stream: &mut TcpStream, keep_alive: bool) -> std::io::Result<()> {
        stream.write_all(self.encode(keep_alive).as_bytes()).await?;
        stream.flush().await
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The `101 Switching Protocols` answering a WebSocket upgrade, or why the upgrade is refused.
pub fn switching_protocols(request: &Request) -> Result<String, Response> {
    if request.header("sec-websocket-version") != Some("13") {
        return Err(Response::error(
            426,
            "upgrade_required",
            "a WebSocket upgrade needs Sec-WebSocket-Version: 13",
        )
        .with("Sec-WebSocket-Version", "13".into()));
    }
    let key = request
        .header("sec-websocket-key")
        .ok_or_else(|| Response::error(400, "bad_request", "a WebSocket upgrade needs Sec-WebSocket-Key"))?;
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let query = "EIO=4&transport=polling&t=N8hyd6w&token=a%2Bb%3D&name=x+y&flag";
        assert_eq!(query_param(query, "EIO").as_deref(), Some("4"));
        assert_eq!(query_param(query, "token").as_deref(), Some("a+b="));
        assert_eq!(query_param(query, "name").as_deref(), Some("x y"));
        assert_eq!(query_param(query, "flag").as_deref(), Some(""));
        assert_eq!(query_param(query, "sid"), None);
        assert_eq!(percent_decode("100%"), "100%", "a stray % is kept");
    }

    #[tokio::test]
    async fn heads_bodies_and_kept_alive_requests_are_read_in_turn() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client
            .write_all(b"POST /socket.io/?EIO=4&sid=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n4helloGET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = Vec::new();
        let post = read_head(&mut server, &mut buffer).await.unwrap().unwrap();
        assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/socket.io/"));
        assert_eq!(post.query_param("sid").as_deref(), Some("abc"));
        assert_eq!(read_body(&mut server, &mut buffer, &post, 10).await.unwrap(), b"4hello");
        let upgrade = read_head(&mut server, &mut buffer).await.unwrap().unwrap();
        assert!(upgrade.is_websocket_upgrade());
        drop(client);
        assert!(read_head(&mut server, &mut buffer).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_heads_and_bodies_are_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let long = format!("GET /ws HTTP/1.1\r\nX-Long: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        client.write_all(long.as_bytes()).await.unwrap();
        let mut buffer = Vec::new();
        assert!(matches!(
            read_head(&mut server, &mut buffer).await,
            Err(HttpError::HeadTooLarge)
        ));
        let post = Request {
            method: "POST".into(),
            path: "/socket.io/".into(),
            query: String::new(),
            headers: vec![("content-length".into(), "11".into())],
        };
        assert!(matches!(
            read_body(&mut server, &mut Vec::new(), &post, 10).await,
            Err(HttpError::BodyTooLarge(10))
        ));
    }
}
