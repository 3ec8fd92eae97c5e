//! Supervision seen from outside: `/readyz` names a role of the process that failed,
//! driven through the real supervisor with the real importer beside a failing role.

use promsync::{
    roles::{Failure, RoleFailure, Supervisor},
    startup::{self, Application, Backends},
};
use serde_json::Value;

use crate::support::TestApp;

/// `/readyz` of the HTTP server on `port`: its status and body.
pub(crate) async fn readyz(app: &TestApp, port: u16) -> (u16, Value) {
    let response = app
        .http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn readyz_turns_503_naming_the_role_that_failed_and_the_others_stop() {
    // Arrange: the real importer and a poller stand-in that fails when told, supervised;
    // an HTTP server reporting their health (outside the set, so it outlives the failure).
    let app = TestApp::builder().importers(0).spawn().await;
    let backends = Backends::connect(&app.settings).await.expect("backends");
    let mut roles = Supervisor::new();
    let server = Application::build_with_roles(&app.settings, &backends, roles.health())
        .await
        .expect("application");
    let port = server.port();
    let server = tokio::spawn(server.run_until_stopped());
    roles.spawn("importer", |stop| {
        startup::importer_role(&app.settings, &backends, 1, stop)
    });
    let (fail, failed) = tokio::sync::oneshot::channel::<()>();
    roles.spawn("poller", |_| async move {
        let _ = failed.await;
        Err(anyhow::anyhow!("the database went away"))
    });
    let supervised = tokio::spawn(roles.run());

    let (status, body) = readyz(&app, port).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"]["importer"], "ok");
    assert_eq!(body["roles"]["poller"], "ok");

    // Act: the poller fails.
    let _ = fail.send(());
    let ended = supervised.await.expect("the supervisor does not panic");

    // Assert: the set stopped naming the poller, the importer stopped with it, and
    // /readyz says so.
    assert_eq!(
        ended,
        Err(RoleFailure {
            role: "poller",
            failure: Failure::Error
        })
    );
    let (status, body) = readyz(&app, port).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["roles"]["poller"], "failed");
    assert_eq!(body["roles"]["importer"], "stopped");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["broker"], "ok");
    server.abort();
}
