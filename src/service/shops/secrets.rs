//! Webhook secret rotation: the shop gets a new secret, shown exactly once, while the
//! previous one keeps working for a grace period so senders can switch without losing
//! notifications (the ingress honours both).

use chrono::{DateTime, Duration, Utc};
use entity::shops;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::ToSchema;

use super::{seal, shop_for_manager};
use crate::{
    keyring::Slot,
    secrets,
    service::{Caller, ServiceError, ServiceResult, Services},
};

/// How long the previous webhook secret stays valid after a rotation, unless asked.
const DEFAULT_GRACE_S: i64 = 24 * 3600;
const MAX_GRACE_S: i64 = 7 * 24 * 3600;
/// Compare-and-set attempts of one rotation before it gives up as busy.
const ROTATE_ATTEMPTS: usize = 16;

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// Shown once.
    pub webhook_secret: String,
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// Gives the shop a new webhook secret (answered once); the previous one stays valid for
/// `grace_period_s` (default a day).
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn rotate_shop_secret(
    services: &Services,
    caller: &Caller,
    id: i64,
    grace_period_s: Option<i64>,
) -> ServiceResult<RotatedSecret> {
    let action = "rotating a webhook secret";
    let mut shop = shop_for_manager(&services.db, caller, id, action).await?;
    let grace = grace_period_s.unwrap_or(DEFAULT_GRACE_S);
    if !(0..=MAX_GRACE_S).contains(&grace) {
        return Err(ServiceError::Invalid(format!(
            "`grace_period_s` must be between 0 and {MAX_GRACE_S}"
        )));
    }
    let secret = secrets::new_webhook_secret();
    let sealed = seal(services, Slot::webhook_secret(id), &secret)?;
    // Compare-and-set on the current secret: two rotations at once must not both demote
    // the same old secret, or the first one's answer would name a secret nobody accepts.
    // Each lost race means another rotation landed, so a few attempts always suffice.
    for attempt in 0..ROTATE_ATTEMPTS {
        if attempt > 0 {
            shop = shop_for_manager(&services.db, caller, id, action).await?;
        }
        let expires_at = services.clock.now() + Duration::seconds(grace);
        // The stored previous value moves as it is: both webhook-secret columns share one
        // encryption binding (see `keyring`).
        let result = shops::Entity::update_many()
            .col_expr(shops::Column::WebhookSecret, sealed.clone().into())
            .col_expr(
                shops::Column::PreviousWebhookSecret,
                Some(shop.webhook_secret.clone()).into(),
            )
            .col_expr(
                shops::Column::PreviousSecretExpiresAt,
                Some(expires_at).into(),
            )
            .filter(shops::Column::Id.eq(shop.id))
            .filter(shops::Column::WebhookSecret.eq(shop.webhook_secret.clone()))
            .exec(&services.db)
            .await?;
        if result.rows_affected == 1 {
            tracing::info!(grace_period_s = grace, "webhook secret rotated");
            return Ok(RotatedSecret {
                webhook_secret: secret,
                previous_secret_expires_at: expires_at,
            });
        }
    }
    Err(ServiceError::Busy {
        message: "the webhook secret is being rotated by others right now; retry".into(),
        retry_after_s: 1,
    })
}
