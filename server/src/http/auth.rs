//! Accounts over HTTP: sign-in, refresh and sign-out.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use furrow_contract::hlc;
use furrow_contract::wire::{LoginRequest, RefreshRequest};

use super::admin::{audit, audit_entry};
use super::body::{control_character, control_character_error, json_body};
use super::{client_address, AppState, MAX_SMALL_BODY};
use crate::auth;
use crate::error::{Error, Result};
use crate::store;

/// `POST /auth/v1/login`: signs in with a user name and password, within the sign-in limits
/// and the password gate, and starts a session.
pub(super) async fn login(State(state): State<AppState>, request: Request) -> Result<Response> {
    let address = client_address(&state, &request);
    let (parts, body) = request.into_parts();
    let client = parts.headers.get("x-client-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let login: LoginRequest = json_body(&state, body, &parts.headers, MAX_SMALL_BODY).await?;
    if login.device_name.chars().count() > 100 {
        return Err(Error::bad_request("invalid_body", "device_name is at most 100 characters"));
    }
    if let Some(character) = control_character(&login.device_name, &[]) {
        return Err(control_character_error("device_name", character));
    }
    // The attempt is counted before the password is verified, in one step, so guesses sent at
    // once cannot all pass the limit between a check and a count.
    let attempt = match state.inner.limiter.admit_noting(&login.username, &address) {
        Ok(attempt) => attempt,
        Err(refusal) => {
            let seconds = auth::retry_after_seconds(refusal.wait);
            // The first refusal of the account from the address in each limiter window is
            // recorded, and the rest are not, so guesses past the limit cannot flood the log.
            if refusal.first_in_window {
                let state = state.clone();
                let detail = format!("refused for {seconds} s; further refusals of this account from this address until then are not recorded");
                let username = login.username.clone();
                let address = address.clone();
                let _ = tokio::task::spawn_blocking(move || audit(&state, "sign_in_limited", &username, &address, &username, &detail)).await;
            }
            return Err(Error::api(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many failed sign-ins; try again in {seconds} s"))
                .with_header("retry-after", seconds.to_string()));
        }
    };
    let pass = match state.inner.gate.enter().await {
        Ok(pass) => pass,
        Err(busy) => {
            state.inner.limiter.withdraw(attempt);
            return Err(busy);
        }
    };
    let tokens = state
        .run(move |state| {
            let mut pass = pass;
            let user = store::read(state.database().as_ref(), |tx| tx.user_by_name(&login.username))?;
            // An unknown name is checked against a dummy hash so it costs the same time and
            // gets the same answer as a wrong password.
            let stored = user.as_ref().map(|user| user.password_hash.as_str()).unwrap_or(&state.inner.dummy_hash);
            let matches = pass.verify(&login.password, stored);
            // The next verification may start while this sign-in writes its tokens.
            drop(pass);
            let user = user.filter(|user| matches && !user.disabled);
            let Some(user) = user else {
                // The attempt stays counted as the failure it is, and the log keeps it, so a
                // password sprayed over many accounts is seen.
                drop(attempt);
                audit(state, "sign_in_failed", &login.username, &address, &login.username, "wrong user name or password");
                return Err(Error::unauthorized("wrong user name or password"));
            };
            state.inner.limiter.succeed(attempt);
            let lifetimes = state.inner.settings.lifetimes;
            let entry = audit_entry("sign_in", &user.username, &address, &user.username, &format!("device {}", login.device_name));
            store::write(state.database().as_ref(), |tx| {
                tx.audit(&entry)?;
                auth::start_session(tx, user.id, client.as_deref(), &login.device_name, lifetimes, hlc::wall_ms())
            })
        })
        .await?;
    Ok(Json(tokens).into_response())
}

/// `POST /auth/v1/refresh`: trades a refresh token for a new pair.
pub(super) async fn refresh(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: RefreshRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    let client = headers.get("x-client-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    // A refusal that revoked the session is answered after the revocation commits.
    let tokens = state
        .write(move |state, tx| {
            auth::renew_session(tx, &request.refresh_token, client.as_deref(), state.inner.settings.lifetimes, hlc::wall_ms())
        })
        .await??;
    Ok(Json(tokens).into_response())
}

/// `POST /auth/v1/logout`: ends the session of a refresh token (an unknown one is no error).
pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: RefreshRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    state
        .write(move |_, tx| {
            if let Some(row) = tx.token(&auth::token_hash(&request.refresh_token))? {
                tx.delete_session(&row.session_id)?;
            }
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
