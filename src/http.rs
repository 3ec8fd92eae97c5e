//! What the HTTP layer (`api`, `ui`, `ingress`) shares: [`AppState`], the data every
//! handler can extract. Each of those modules exposes its own routes (`routes`), and
//! `startup` mounts them on one server.

use std::sync::Arc;

use crate::{config::Settings, roles::RoleHealth, service::Services};

/// What every HTTP handler shares. The webhook ingress keeps its own state beside it
/// (`ingress::IngressState`): the key cache and rate limit are its business alone.
pub struct AppState {
    /// The application layer's backends, which handlers pass to `service` calls.
    pub services: Services,
    pub settings: Arc<Settings>,
    /// The states of this process's roles, for `/readyz`.
    pub roles: RoleHealth,
}
