//! The dashboard page: plain HTML, CSS and JavaScript embedded in the binary (like the agent's
//! UI), talking to the JSON API with the administrator token the user types in.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
struct Assets;

/// `/` and `/assets/*`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(|| serve("index.html"))).route("/assets/{file}", get(|Path(f): Path<String>| serve_owned(f)))
}

async fn serve_owned(file: String) -> Response {
    serve(&file).await
}

async fn serve(file: &str) -> Response {
    match Assets::get(file) {
        Some(content) => {
            let mime = content.metadata.mimetype().to_string();
            (
                [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache".to_string())],
                content.data.into_owned(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
