//! Handing out and taking back access: only `manage_employees` creates, lists or deletes
//! employees, only in its own account; a deleted employee's token and UI sessions stop at
//! once; an account never loses its last manager, not even to two managers deleting
//! each other at the same moment.

use std::{collections::HashSet, time::Duration};

use reqwest::{header, redirect, Method};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{json, Value};

use crate::support::{employee, eventually, Backend, TestApp};

/// Creates an employee as `token`'s holder; answers its id and token.
async fn hire(app: &TestApp, token: &str, name: &str, permissions: &[&str]) -> (i64, String) {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/employees",
            token,
            Some(json!({"name": name, "permissions": permissions})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_i64().unwrap(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

async fn staff(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.call(Method::GET, "/api/employees", token, None).await;
    assert_eq!(status, 200, "{body}");
    body["employees"].as_array().unwrap().clone()
}

/// The id of the account's admin (its first employee).
async fn admin_id(app: &TestApp, account_id: i64) -> i64 {
    app.count(&format!(
        "SELECT min(id) FROM employees WHERE account_id = {account_id}"
    ))
    .await
}

async fn managers(app: &TestApp, account_id: i64) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM employees WHERE account_id = {account_id} \
         AND permissions LIKE '%manage_employees%'"
    ))
    .await
}

/// Signs in to the operator pages with `token`; answers the session's `Cookie` header.
async fn ui_session(app: &TestApp, token: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let form = http
        .get(format!("{}/ui/login", app.address))
        .send()
        .await
        .unwrap();
    let login_cookie = form.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = form.text().await.unwrap();
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("csrf field") + marker.len();
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let signed_in = http
        .post(format!("{}/ui/login", app.address))
        .header(header::COOKIE, login_cookie)
        .form(&[("csrf", csrf), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    signed_in
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("promsync_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Loads the orders page with a session cookie; answers status and `Location`.
async fn ui_orders(app: &TestApp, cookie: &str) -> (u16, Option<String>) {
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .get(format!("{}/ui/orders", app.address))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), location)
}

#[tokio::test]
async fn an_employee_without_manage_employees_gets_403_everywhere_and_creates_nobody() {
    // Arrange: every other permission, so only the missing one can refuse it.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let clerk = employee(&app, &["goods_without_write_off", "manage_integrations"]).await;
    let admin = admin_id(&app, app.account_id).await;
    let before = app.count("SELECT count(*) FROM employees").await;

    // Act
    let attempts = [
        (
            Method::POST,
            "/api/employees".to_owned(),
            Some(json!({"name": "mole", "permissions": []})),
        ),
        (Method::GET, "/api/employees".to_owned(), None),
        (Method::DELETE, format!("/api/employees/{admin}"), None),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = app.call(method.clone(), &path, &clerk, body).await;

        // Assert
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("manage_employees"),
            "{answer}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM employees").await, before);
    assert_eq!(
        managers(&app, app.account_id).await,
        1,
        "the admin is intact"
    );
}

#[tokio::test]
async fn a_manager_cannot_grant_a_permission_it_does_not_hold() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let (_, manager) = hire(&app, &app.admin_token, "hr", &["manage_employees"]).await;
    let before = app.count("SELECT count(*) FROM employees").await;

    let (status, answer) = app
        .call(
            Method::POST,
            "/api/employees",
            &manager,
            Some(json!({"name": "x", "permissions": ["manage_integrations"]})),
        )
        .await;

    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("manage_integrations"));
    assert_eq!(app.count("SELECT count(*) FROM employees").await, before);
}

#[tokio::test]
async fn unknown_permissions_and_bad_names_are_refused_naming_what_is_wrong() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let before = app.count("SELECT count(*) FROM employees").await;
    let long = "x".repeat(101);
    let cases = [
        (
            json!({"name": "a", "permissions": ["superuser"]}),
            "superuser",
        ),
        (json!({"name": "   ", "permissions": []}), "name"),
        (json!({"name": long, "permissions": []}), "name"),
        (json!({"name": "a\u{7}b", "permissions": []}), "name"),
        (
            json!({"name": "a", "permissions": [], "token": "chosen"}),
            "token",
        ),
    ];

    for (body, named) in cases {
        let (status, answer) = app
            .call(
                Method::POST,
                "/api/employees",
                &app.admin_token,
                Some(body.clone()),
            )
            .await;

        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{body}: {message}");
    }
    assert_eq!(app.count("SELECT count(*) FROM employees").await, before);
}

#[tokio::test]
async fn the_list_shows_only_the_callers_account_and_never_a_token_or_its_hash() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let other = app.other_tenant().await;
    let (own, own_token) = hire(&app, &app.admin_token, "Olha", &["goods_without_write_off"]).await;
    let (foreign, foreign_token) = hire(&app, &other.admin_token, "Spy", &[]).await;

    // Act
    let (status, body) = app
        .call(Method::GET, "/api/employees", &app.admin_token, None)
        .await;

    // Assert
    assert_eq!(status, 200, "{body}");
    let rows = body["employees"].as_array().unwrap();
    let ids: HashSet<i64> = rows.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        HashSet::from([admin_id(&app, app.account_id).await, own])
    );
    assert!(!ids.contains(&foreign));
    let olha = rows.iter().find(|e| e["id"] == own).unwrap();
    assert_eq!(olha["name"], "Olha");
    assert_eq!(olha["permissions"], json!(["goods_without_write_off"]));
    assert!(olha["created_at"].is_string());
    let keys: HashSet<&str> = olha
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "name", "permissions", "created_at"])
    );
    let text = body.to_string();
    let hashes = app
        .text(&format!(
            "SELECT token_hash FROM employees WHERE id = {own}"
        ))
        .await
        .unwrap();
    for secret in [&own_token, &foreign_token, &app.admin_token, &hashes] {
        assert!(!text.contains(secret.as_str()), "the list shows a secret");
    }
}

#[tokio::test]
async fn a_deleted_employees_token_answers_401_at_once_and_its_ui_sessions_end() {
    // Arrange: the token works for the API and has an operator-page session.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let (clerk, token) = hire(&app, &app.admin_token, "clerk", &[]).await;
    let (status, _) = app.call(Method::GET, "/api/orders", &token, None).await;
    assert_eq!(status, 200);
    let cookie = ui_session(&app, &token).await;
    assert_eq!(ui_orders(&app, &cookie).await.0, 200);

    // Act
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/employees/{clerk}"),
            &app.admin_token,
            None,
        )
        .await;

    // Assert: the very next request is refused, through either door.
    assert_eq!(status, 204, "{body}");
    let (status, answer) = app.call(Method::GET, "/api/orders", &token, None).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(
        ui_orders(&app, &cookie).await,
        (303, Some("/ui/login".to_owned()))
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM ui_sessions WHERE employee_id = {clerk}"
        ))
        .await,
        0
    );
    assert!(staff(&app, &app.admin_token)
        .await
        .iter()
        .all(|e| e["id"] != clerk));
    // Deleting it again finds nothing to delete.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/employees/{clerk}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, 404, "deleted once, gone");
}

#[tokio::test]
async fn another_tenants_employee_is_not_found_and_stays() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let other = app.other_tenant().await;
    let (foreign, foreign_token) = hire(&app, &other.admin_token, "theirs", &[]).await;
    let foreign_admin = admin_id(&app, other.account_id).await;

    for id in [foreign, foreign_admin] {
        let (status, answer) = app
            .call(
                Method::DELETE,
                &format!("/api/employees/{id}"),
                &app.admin_token,
                None,
            )
            .await;

        assert_eq!(status, 404, "{answer}");
        assert_eq!(answer["error"]["code"], "not_found");
    }
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM employees WHERE account_id = {}",
            other.account_id
        ))
        .await,
        2
    );
    let (status, _) = app
        .call(Method::GET, "/api/orders", &foreign_token, None)
        .await;
    assert_eq!(status, 200, "their token still works");
}

#[tokio::test]
async fn the_last_manager_cannot_be_deleted_but_may_leave_once_another_manages() {
    // Arrange: the admin is the only manager; a clerk does not count.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let admin = admin_id(&app, app.account_id).await;
    hire(
        &app,
        &app.admin_token,
        "clerk",
        &["goods_without_write_off"],
    )
    .await;
    let path = format!("/api/employees/{admin}");

    // Act + Assert: refused with a reason, nothing deleted.
    let (status, answer) = app
        .call(Method::DELETE, &path, &app.admin_token, None)
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("last employee"));
    assert_eq!(managers(&app, app.account_id).await, 1);

    // With a second manager the admin may delete itself, and its token stops.
    let (_, successor) = hire(&app, &app.admin_token, "hr", &["manage_employees"]).await;
    let (status, answer) = app
        .call(Method::DELETE, &path, &app.admin_token, None)
        .await;
    assert_eq!(status, 204, "{answer}");
    let (status, _) = app
        .call(Method::GET, "/api/employees", &app.admin_token, None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .call(Method::GET, "/api/employees", &successor, None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn two_last_managers_deleting_each_other_at_once_leave_one() {
    // Arrange: the admin and one more manager; every round they delete each other at the
    // same moment, and the survivor hires the next opponent.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let mut survivor = (
        admin_id(&app, app.account_id).await,
        app.admin_token.clone(),
    );

    for round in 0..12 {
        let opponent = hire(
            &app,
            &survivor.1,
            &format!("m{round}"),
            &["manage_employees"],
        )
        .await;
        assert_eq!(managers(&app, app.account_id).await, 2);

        // Act
        let (fire, return_fire) = (
            format!("/api/employees/{}", opponent.0),
            format!("/api/employees/{}", survivor.0),
        );
        let (a, b) = tokio::join!(
            app.call(Method::DELETE, &fire, &survivor.1, None),
            app.call(Method::DELETE, &return_fire, &opponent.1, None),
        );

        // Assert: exactly one deletion went through; the other was refused, as the last
        // manager (409) or as a caller that no longer exists (401).
        let statuses = [a.0, b.0];
        assert_eq!(
            statuses.iter().filter(|s| **s == 204).count(),
            1,
            "round {round}: {a:?} {b:?}"
        );
        assert!(
            statuses.iter().all(|s| [204, 401, 409].contains(s)),
            "round {round}: {a:?} {b:?}"
        );
        assert_eq!(managers(&app, app.account_id).await, 1, "round {round}");
        if a.0 != 204 {
            survivor = opponent;
        }
    }
}

#[tokio::test]
async fn a_manager_revoked_while_its_requests_wait_neither_creates_nor_deletes_anyone() {
    // SQLite runs one writer at a time through one connection: a request cannot be in
    // flight beside the revocation, so there is nothing to race.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    if app.backend == Backend::Embedded {
        return;
    }
    // Arrange: a manager about to be revoked, and a clerk it wants to remove. The test
    // holds the account's row, as a revocation in progress would.
    let (manager_id, manager) = hire(&app, &app.admin_token, "hr", &["manage_employees"]).await;
    let (clerk, _) = hire(&app, &app.admin_token, "clerk", &[]).await;
    let before = app.count("SELECT count(*) FROM employees").await;
    let revocation = app.db.begin().await.unwrap();
    revocation
        .execute_unprepared(&format!(
            "SELECT id FROM accounts WHERE id = {} FOR UPDATE",
            app.account_id
        ))
        .await
        .unwrap();
    let app_ref = &app;

    // Act: both requests pass the token check, wait for the account, and meanwhile the
    // manager is deleted.
    let delete_path = format!("/api/employees/{clerk}");
    let (created, deleted, ()) = tokio::join!(
        app.call(
            Method::POST,
            "/api/employees",
            &manager,
            Some(json!({"name": "backdoor", "permissions": []})),
        ),
        app.call(Method::DELETE, &delete_path, &manager, None),
        async move {
            eventually(
                "both requests waiting for the account's row",
                Duration::from_secs(30),
                || async {
                    let waiting = app_ref
                        .count(
                            "SELECT count(*) FROM pg_stat_activity \
                             WHERE datname = current_database() AND wait_event_type = 'Lock'",
                        )
                        .await;
                    (waiting == 2).then_some(())
                },
            )
            .await;
            revocation
                .execute_unprepared(&format!("DELETE FROM employees WHERE id = {manager_id}"))
                .await
                .unwrap();
            revocation.commit().await.unwrap();
        },
    );

    // Assert
    assert_eq!(created.0, 401, "{created:?}");
    assert_eq!(deleted.0, 401, "{deleted:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM employees").await,
        before - 1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM employees WHERE id = {clerk}"
        ))
        .await,
        1
    );
}
