//! One HTTP/1.1 keep-alive connection, driven directly with hyper: a load worker owns one and
//! sends its requests on it one after another.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, StatusCode,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    header::{self, HeaderName, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// Where a server's requests go: the socket address and the Host header.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: HeaderValue,
}

/// The request target (origin form) of a URL: its path and query.
pub fn path_of(url: &Url) -> String {
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    path
}

impl Target {
    pub async fn resolve(url: &Url) -> Result<Self> {
        if url.scheme() != "http" {
            bail!("{url}: only http:// is supported (the benchmark runs on loopback)");
        }
        let host = url.host_str().context("the URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self {
            addr,
            host: HeaderValue::try_from(host)?,
        })
    }
}

/// A response, read to the end.
pub struct Reply {
    pub status: StatusCode,
    pub dpop_nonce: Option<String>,
    /// Where a redirect points.
    pub location: Option<String>,
    pub body: Bytes,
}

pub struct Connection {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
    /// Times the connection was opened again after the server closed it.
    pub reconnects: u64,
}

async fn handshake(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the server or the sender closes the connection; a failed request reports it.
        let _ = connection.await;
    });
    Ok(sender)
}

impl Connection {
    pub async fn open(target: Target) -> Result<Self> {
        let sender = handshake(target.addr).await?;
        Ok(Self {
            target,
            sender,
            reconnects: 0,
        })
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: &Bytes,
    ) -> Result<Request<Full<Bytes>>> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, self.target.host.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(body.clone()))?)
    }

    /// Sends a request and reads its response. A connection the server has closed while idle
    /// is opened again once.
    pub async fn send(
        &mut self,
        method: &Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: &Bytes,
    ) -> Result<Reply> {
        if self.sender.ready().await.is_err() {
            self.reconnect().await?;
        }
        let response = match self
            .sender
            .try_send_request(self.request(method, path, headers, body)?)
            .await
        {
            Ok(response) => response,
            // Not sent at all: the connection was closed under us; safe to send again.
            Err(e) if e.message().is_some() => {
                self.reconnect().await?;
                self.sender
                    .send_request(self.request(method, path, headers, body)?)
                    .await?
            }
            Err(e) => return Err(e.into_error().into()),
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        let named = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Reply {
            status: parts.status,
            dpop_nonce: named("dpop-nonce"),
            location: named(header::LOCATION.as_str()),
            body,
        })
    }

    async fn reconnect(&mut self) -> Result<()> {
        self.sender = handshake(self.target.addr).await?;
        self.reconnects += 1;
        Ok(())
    }
}

/// One GET on a fresh connection, for discovery.
pub async fn get(url: &Url) -> Result<Reply> {
    let mut connection = Connection::open(Target::resolve(url).await?).await?;
    let accept = (header::ACCEPT, HeaderValue::from_static("application/json"));
    connection
        .send(&Method::GET, &path_of(url), &[accept], &Bytes::new())
        .await
}
