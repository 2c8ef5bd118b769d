//! The order-status service: `GET /orders/{id}`, `PUT /orders/{id}` (body: the status), and
//! `GET /metrics` (OpenMetrics text: requests by route and outcome, orders stored).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::store::OrderStore;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    outcome: &'static str,
}

struct App {
    store: Arc<dyn OrderStore>,
    requests: Family<RequestLabels, Counter>,
    orders: Gauge,
    registry: Registry,
}

impl App {
    fn count(&self, route: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { route, outcome })
            .inc();
    }
}

async fn get_order(State(app): State<Arc<App>>, Path(id): Path<u64>) -> impl IntoResponse {
    match app.store.status(id) {
        Some(status) => {
            app.count("get", "hit");
            (StatusCode::OK, status.to_string())
        }
        None => {
            app.count("get", "miss");
            (StatusCode::NOT_FOUND, "no such order\n".to_string())
        }
    }
}

async fn put_order(State(app): State<Arc<App>>, Path(id): Path<u64>, body: String) -> StatusCode {
    app.store.set_status(id, Arc::from(body.trim()));
    app.count("put", "ok");
    StatusCode::NO_CONTENT
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.orders.set(app.store.len() as i64);
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &app.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "cannot encode metrics\n".to_string(),
        ),
    }
}

/// The service's routes over `store`.
pub fn router(store: Arc<dyn OrderStore>) -> Router {
    let mut registry = Registry::default();
    let requests = Family::<RequestLabels, Counter>::default();
    let orders = Gauge::default();
    registry.register(
        "orders_requests",
        "Requests by route and outcome",
        requests.clone(),
    );
    registry.register("orders_stored", "Orders in the store", orders.clone());
    let app = Arc::new(App {
        store,
        requests,
        orders,
        registry,
    });
    Router::new()
        .route("/orders/{id}", get(get_order).put(put_order))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Serves on `addr` until killed, on `workers` Tokio threads; prints `listening on ADDR` once
/// bound (with port 0 the kernel picks the port, and the line tells it).
pub fn serve(store: Arc<dyn OrderStore>, addr: &str, workers: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        println!("listening on {}", listener.local_addr()?);
        use std::io::Write as _;
        std::io::stdout().flush()?;
        axum::serve(listener, router(store)).await?;
        Ok(())
    })
}
