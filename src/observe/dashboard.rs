//! `surql orchestrate dashboard`: a read-only web page over the state store.
//!
//! The page (one self-contained HTML file in the binary) polls a JSON API
//! with the same data as `deployments` and `show --output json`. It binds to
//! loopback unless given a token, which every request must then carry. It
//! never writes: an embedded store is opened per read (at most once a
//! second) and closed again, so deployments from the same folder can open
//! it; while one runs, it is read through that deployment's socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::listen::{ObserveError, bind, is_loopback};
use super::view::DeploymentView;
use crate::connection::ConnectionConfig;
use crate::state::{StateError, StateStore};

/// The page, served for `/` and `/deployments/ID`.
const PAGE: &str = include_str!("dashboard.html");
/// How long one read of the store answers every request for the same data.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// How long a read of the store may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Deployments the list shows.
const LISTED: usize = 100;

/// How to serve the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// `host:port` to listen on (port 0 picks one).
    pub listen: String,
    /// Required on every request when set (`Authorization: Bearer …` or `?token=`).
    pub token: Option<String>,
    /// The state store to read.
    pub store: ConnectionConfig,
}

/// A dashboard being served.
pub struct Dashboard {
    /// Where it listens (the port chosen when `:0` was asked).
    pub address: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// An answer as read, with when.
type Answer = (Instant, StatusCode, Arc<str>);

struct Shared {
    token: Option<String>,
    store: ConnectionConfig,
    /// The dashboard's own connections to a store on a server, kept between reads.
    client: crate::connection::Client,
    /// Answers by API path.
    answers: tokio::sync::Mutex<HashMap<String, Answer>>,
}

impl Dashboard {
    /// Binds and starts serving. Refuses an address beyond loopback without a token.
    pub async fn start(options: DashboardOptions) -> Result<Self, ObserveError> {
        let token = options.token.filter(|t| !t.is_empty());
        if token.is_none() && !is_loopback(&options.listen) {
            return Err(ObserveError::TokenRequired { addr: options.listen });
        }
        if token.as_ref().is_some_and(|t| t.trim().len() < 16) {
            return Err(ObserveError::WeakToken);
        }
        if let Some(token) = &token {
            crate::redact::register_secrets_in(&serde_json::json!({ "token": token }));
        }
        let listener = bind("--listen", &options.listen).await?;
        let address = listener.local_addr().map_err(|source| ObserveError::Bind {
            flag: "--listen",
            addr: options.listen.clone(),
            source,
        })?;
        let shared = Arc::new(Shared {
            token,
            store: options.store,
            client: crate::connection::Client::new(),
            answers: Default::default(),
        });
        let app = axum::Router::new()
            .route("/", axum::routing::get(page))
            .route("/deployments/{id}", axum::routing::get(page))
            .route("/api/deployments", axum::routing::get(deployments))
            .route("/api/deployments/{id}", axum::routing::get(deployment))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), authorised))
            .with_state(shared);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { address, server })
    }

    /// Serves until the server fails (or the process is stopped).
    pub async fn wait(self) -> Result<(), ObserveError> {
        let address = self.address;
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ObserveError::Serve { addr: address, source }),
            Err(join) => Err(ObserveError::Serve {
                addr: address,
                source: std::io::Error::other(join.to_string()),
            }),
        }
    }
}

/// Compares without stopping at the first difference (no timing hint).
fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

/// The token a request carries: `Authorization: Bearer T`, else `?token=T`.
fn token_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(percent_decoded)
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            (b'+', _) => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn authorised(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(expected) = &shared.token {
        let given = token_of(request.headers(), request.uri());
        if !given.is_some_and(|given| same(&given, expected)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "token required or wrong: pass ?token=… or Authorization: Bearer …\n",
            )
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    // Self-contained: nothing is loaded from anywhere else, not even this origin's other pages.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

async fn deployments(State(shared): State<Arc<Shared>>) -> Response {
    shared
        .answer("/api/deployments".into(), async |store: &StateStore| {
            let listed = store.list(LISTED).await?;
            Ok(serde_json::json!({ "deployments": listed }).to_string())
        })
        .await
}

async fn deployment(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    shared
        .answer(format!("/api/deployments/{id}"), async |store: &StateStore| {
            let (deployment, environments) = store.show(&id).await?;
            Ok(serde_json::to_string(&DeploymentView::of(deployment, environments)).unwrap_or_default())
        })
        .await
}

impl Shared {
    /// The answer for `path`: read fresh from the store at most once a second.
    async fn answer(
        &self,
        path: String,
        read: impl AsyncFnOnce(&StateStore) -> Result<String, StateError>,
    ) -> Response {
        let mut answers = self.answers.lock().await;
        let (status, body) = match answers.get(&path) {
            Some((at, status, body)) if at.elapsed() < FRESH_FOR => (*status, body.clone()),
            _ => {
                let (status, body) = self.read(read).await;
                answers.retain(|_, (at, _, _)| at.elapsed() < FRESH_FOR);
                answers.insert(path, (Instant::now(), status, body.clone()));
                (status, body)
            }
        };
        (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }

    async fn read(&self, read: impl AsyncFnOnce(&StateStore) -> Result<String, StateError>) -> (StatusCode, Arc<str>) {
        let error = |status: StatusCode, message: String| {
            let body = serde_json::json!({ "error": crate::redact::redact(&message) }).to_string();
            (status, Arc::from(body))
        };
        let Some(store) = StateStore::open_existing(&self.client, self.store.clone(), READ_TIMEOUT).await else {
            // Nothing recorded yet (or unreachable: said so rather than an empty list).
            return match self.store.endpoint_kind() {
                Ok(crate::connection::EndpointKind::Remote) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("state store {} unreachable", self.store.display_url()),
                ),
                _ => (StatusCode::OK, Arc::from(r#"{"deployments":[]}"#)),
            };
        };
        let answered = tokio::time::timeout(READ_TIMEOUT, read(&store)).await;
        drop(store);
        // Let go of an embedded store: a deployment from this folder may open it next.
        crate::connection::close_embedded(&self.store).await;
        match answered {
            Ok(Ok(body)) => (StatusCode::OK, Arc::from(body)),
            Ok(Err(StateError::NotFound(message))) => error(StatusCode::NOT_FOUND, message),
            Ok(Err(other)) => error(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
            Err(_) => error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the state store did not answer within {}s", READ_TIMEOUT.as_secs()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_header_or_the_query() {
        let mut headers = HeaderMap::new();
        let uri: Uri = "/api/deployments?x=1&token=a%2Bb%20c".parse().unwrap();
        assert_eq!(token_of(&headers, &uri).as_deref(), Some("a+b c"));
        headers.insert(header::AUTHORIZATION, "Bearer secret-1".parse().unwrap());
        assert_eq!(token_of(&headers, &uri).as_deref(), Some("secret-1"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "abcd"));
    }
}
