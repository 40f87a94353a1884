//! Data the platform originates (docs/sync.md section 11): accounts and villages, listing
//! moderation, and sales credited to households. The platform writes with the server's own clock
//! and node, and an actor such as `platform` or `moderator:li`; devices receive these writes in
//! their pulls like any other change.

use std::collections::HashSet;
use std::sync::OnceLock;

use furrow_contract::hlc;
use furrow_contract::schema::{self, TableSpec};
use furrow_contract::validate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{self, Caller, PasswordCost};
use crate::error::{Error, Result};
use crate::rows::{value_error_code, write_field, SCOPE_FIELD};
use crate::store::{StoredField, SubmissionRow, SubmissionVerdict, Tx};

/// The server's own clock and node, with which the platform writes.
pub use crate::rows::ServerClock;

/// The namespace of village row ids: a village's synced row has id `uuidv5(NAMESPACE, code)`, so
/// every server and every operator command names the same village the same way.
pub const VILLAGE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6675_7272_6f77_5669_6c6c_6167_6500_0001);

/// The synced row id of the village with this code.
pub fn village_row_id(code: &str) -> String {
    uuid::Uuid::new_v5(&VILLAGE_NAMESPACE, code.as_bytes()).to_string()
}

/// Writes fields of a row as the platform: each with a fresh HLC greater than the one stored,
/// so the platform's write wins. Creates the row in `scope` if it is new. Values must have been
/// checked.
pub fn platform_write(
    tx: &mut Tx<'_>,
    clock: &ServerClock,
    actor: &str,
    table: &TableSpec,
    row_id: &str,
    scope: Option<&str>,
    fields: &[(&str, Value)],
) -> Result<()> {
    let mut row = tx.row(table.name, row_id)?;
    let mut writes: Vec<(&str, Value)> = Vec::new();
    if row.is_none() {
        let scope = scope.ok_or_else(|| Error::not_found(format!("{} {row_id} does not exist", table.name)))?;
        writes.push((SCOPE_FIELD, Value::String(scope.to_owned())));
    }
    writes.extend(fields.iter().cloned());
    for (name, value) in writes {
        let stored_hlc = tx.field(table.name, row_id, name)?.map(|stored| stored.hlc).unwrap_or(0);
        let stamp = clock.tick_after(stored_hlc)?;
        let stored = StoredField { value, hlc: stamp, node: clock.node().0.to_vec(), server_seq: 0, actor: actor.to_owned() };
        write_field(tx, table.name, row_id, name, row.as_ref(), stored)?;
        row = tx.row(table.name, row_id)?;
    }
    Ok(())
}

fn check(table: &TableSpec, name: &str, value: &Value) -> Result<()> {
    let field = table
        .field(name)
        .ok_or_else(|| Error::bad_request("unknown_field", format!("table {} has no field {name:?}", table.name)))?;
    validate::check_value(field, value).map_err(|failure| {
        Error::bad_request(
            value_error_code(&failure.code),
            format!("{}.{name} {} ({})", table.name, failure.message_en, failure.code),
        )
    })
}

/// Checks a village code and name the way the synced `villages` table does.
pub fn check_village(code: &str, name: &str) -> Result<()> {
    check(&schema::VILLAGES, "code", &Value::String(code.to_owned()))?;
    if name.trim().is_empty() {
        return Err(Error::bad_request("invalid_value", "the village name must not be empty"));
    }
    check(&schema::VILLAGES, "name", &Value::String(name.to_owned()))
}

/// Adds a village (or renames it) and writes its synced row, which devices assigned to it pull.
pub fn add_village(tx: &mut Tx<'_>, clock: &ServerClock, code: &str, name: &str) -> Result<bool> {
    check_village(code, name)?;
    let new = tx.upsert_village(code, name, hlc::wall_ms())?;
    let fields = [("code", Value::String(code.to_owned())), ("name", Value::String(name.to_owned()))];
    platform_write(tx, clock, "platform", &schema::VILLAGES, &village_row_id(code), Some(code), &fields)?;
    Ok(new)
}

/// Checks a user name: 3 to 64 characters, letters, digits, `.`, `_`, `-` or `@`.
pub fn check_username(username: &str) -> Result<()> {
    let ok = (3..=64).contains(&username.chars().count())
        && username.chars().all(|character| character.is_alphanumeric() || "._-@".contains(character));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request("invalid_username", "a user name is 3 to 64 letters, digits, '.', '_', '-' or '@'"))
    }
}

/// Passwords people choose most often, at least 8 characters long, lowercase, one a line: from
/// published lists of leaked passwords, with the ones most common in China.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Whether `password` (compared in lowercase) is one of the common passwords shipped with the
/// server.
pub fn is_common_password(password: &str) -> bool {
    static COMMON: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let common = COMMON.get_or_init(|| COMMON_PASSWORDS.lines().map(str::trim).filter(|line| !line.is_empty()).collect());
    let lowered = password.trim().to_lowercase();
    common.contains(lowered.as_str())
}

/// Whether every character of `password` follows the one before it by one code point, up or
/// down (`12345678`, `abcdefgh`, `87654321`).
fn is_run(password: &str) -> bool {
    let codes: Vec<u32> = password.chars().map(u32::from).collect();
    let step = |up: bool| codes.windows(2).all(|pair| if up { pair[1] == pair[0] + 1 } else { pair[0] == pair[1] + 1 });
    codes.len() > 1 && (step(true) || step(false))
}

/// Checks a new password as NIST SP 800-63B asks: at least 8 characters (and at most 1024
/// bytes), no composition rules, but refused when it is one of the common passwords shipped
/// with the server, one character repeated or a run (`        `, `aaaaaaaa`, `12345678`), or
/// the user name or a password containing it. A control character is refused as in any text.
pub fn check_password(username: &str, password: &str) -> Result<()> {
    let weak = |message: &str| Err(Error::bad_request("weak_password", message.to_owned()));
    if password.chars().count() < 8 || password.len() > 1024 {
        return weak("a password has 8 to 1024 characters; a phrase of several words is easy to remember and hard to guess");
    }
    if let Some(character) = password.chars().find(|character| character.is_control()) {
        return Err(crate::error::control_character_error("the password", character));
    }
    let mut characters = password.chars();
    let first = characters.next();
    if characters.all(|character| Some(character) == first) || is_run(password) {
        return weak("a password of one character repeated, or a run such as 12345678, is guessed at once");
    }
    if is_common_password(password) {
        return weak("this is one of the most common passwords, which are guessed first; choose another");
    }
    let name = username.trim().to_lowercase();
    if !name.is_empty() && password.to_lowercase().contains(&name) {
        return weak("a password may not be or contain the user name");
    }
    Ok(())
}

/// Answers 404 unless every village exists.
pub fn require_villages(tx: &mut Tx<'_>, villages: &[String]) -> Result<()> {
    for code in villages {
        if tx.village_name(code)?.is_none() {
            return Err(Error::not_found(format!("village {code} does not exist; add it first")));
        }
    }
    Ok(())
}

/// Creates an assistant assigned to the given villages; returns the id. The password must have
/// been hashed already (hashing is slow and stays outside the transaction).
pub fn add_assistant(tx: &mut Tx<'_>, username: &str, password_hash: &str, villages: &[String]) -> Result<i64> {
    check_username(username)?;
    require_villages(tx, villages)?;
    let id = tx.create_user(username, password_hash, hlc::wall_ms())?;
    for code in villages {
        tx.assign(id, code)?;
    }
    Ok(id)
}

/// Creates an admin: an account of the platform's staff, with no villages, whose access tokens
/// open the admin endpoints. Returns the id.
pub fn add_admin(tx: &mut Tx<'_>, username: &str, password_hash: &str) -> Result<i64> {
    check_username(username)?;
    let id = tx.create_user(username, password_hash, hlc::wall_ms())?;
    tx.set_role(id, crate::auth::ADMIN_ROLE)?;
    Ok(id)
}

/// The user with this name, or 404.
pub fn user_id(tx: &mut Tx<'_>, username: &str) -> Result<i64> {
    tx.user_by_name(username)?
        .map(|user| user.id)
        .ok_or_else(|| Error::not_found(format!("there is no account {username:?}")))
}

/// Hashes a new password of `username` at the given cost after checking it.
pub fn new_password_hash(username: &str, password: &str, cost: PasswordCost) -> Result<String> {
    check_password(username, password)?;
    auth::hash_password(password, cost)
}

/// `POST /admin/v1/listings/{id}/moderation`: the platform's verdict on a listing. Absent fields
/// are left as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModerationRequest {
    /// Accepted for older callers and ignored: the moderator is the admin who signed in
    /// (`moderator:<name>`), or `platform` for the bootstrap token, never a name in the body.
    #[serde(default)]
    pub moderator: Option<String>,
    /// `pending`, `approved`, `rejected`…
    #[serde(default)]
    pub moderation_status: Option<String>,
    /// The reason given with a rejection.
    #[serde(default)]
    pub moderation_reason: Option<String>,
    /// The item id on the selling platform.
    #[serde(default)]
    pub platform_item_id: Option<String>,
    /// Whether the listing sold out.
    #[serde(default)]
    pub sold_out: Option<bool>,
}

/// Applies a moderation verdict to an existing listing, written as `actor` (`moderator:<name>`
/// for a signed-in admin, `platform` for the platform's own systems).
pub fn moderate(tx: &mut Tx<'_>, clock: &ServerClock, actor: &str, listing_id: &str, request: &ModerationRequest) -> Result<()> {
    let actor = actor.to_owned();
    let mut fields = Vec::new();
    if let Some(status) = &request.moderation_status {
        fields.push(("moderation_status", Value::String(status.clone())));
    }
    if let Some(reason) = &request.moderation_reason {
        fields.push(("moderation_reason", Value::String(reason.clone())));
    }
    if let Some(item) = &request.platform_item_id {
        fields.push(("platform_item_id", Value::String(item.clone())));
    }
    if let Some(sold_out) = request.sold_out {
        fields.push(("sold_out", Value::Bool(sold_out)));
    }
    if fields.is_empty() {
        return Err(Error::bad_request("invalid_value", "give at least one of moderation_status, moderation_reason, platform_item_id, sold_out"));
    }
    for (name, value) in &fields {
        check(&schema::LISTINGS, name, value)?;
    }
    match tx.row("listings", listing_id)? {
        Some(row) if !row.deleted => {}
        _ => return Err(Error::not_found(format!("listing {listing_id} does not exist"))),
    }
    platform_write(tx, clock, &actor, &schema::LISTINGS, listing_id, None, &fields)?;
    // The verdict also goes on the listing's latest submission, where the platform reads the
    // history; a listing moderated without ever being submitted has none, which is fine.
    if request.moderation_status.is_some() || request.moderation_reason.is_some() || request.platform_item_id.is_some() {
        let verdict = SubmissionVerdict {
            moderation_status: request.moderation_status.as_deref(),
            moderation_reason: request.moderation_reason.as_deref(),
            platform_item_id: request.platform_item_id.as_deref(),
            moderated_by: &actor,
            moderated_at: hlc::wall_ms(),
        };
        tx.moderate_submission(listing_id, &verdict)?;
    }
    Ok(())
}

/// The moderation status a new submission gets (`codes::ModerationStatus::Pending`).
pub const PENDING: &str = "pending";

/// Records the submissions among `listing_ids` (listings a push just wrote): a live listing
/// whose `status` is `submitted` and whose `submission_key` the server has not seen is recorded
/// once under that key, and its server-only `moderation_status` becomes `pending` (a reason
/// left from an earlier rejection is cleared), written with the server's clock so devices pull
/// it. A key seen before (a batch delivered again, a second submit of the same listing) records
/// nothing and writes nothing. Returns the keys recorded.
pub fn record_submissions(
    tx: &mut Tx<'_>,
    clock: &ServerClock,
    caller: &Caller,
    client_id: &str,
    listing_ids: &[String],
    now: i64,
) -> Result<Vec<String>> {
    let mut recorded = Vec::new();
    for listing_id in listing_ids {
        let Some(row) = tx.row(schema::LISTINGS.name, listing_id)?.filter(|row| !row.deleted) else { continue };
        let value = |stored: Option<StoredField>| stored.and_then(|stored| stored.value.as_str().map(str::to_owned));
        let status = value(tx.field(schema::LISTINGS.name, listing_id, "status")?);
        if status.as_deref() != Some(furrow_contract::codes::ListingStatus::Submitted.code()) {
            continue;
        }
        let Some(key) = value(tx.field(schema::LISTINGS.name, listing_id, "submission_key")?).filter(|key| !key.trim().is_empty())
        else {
            continue;
        };
        let submission = SubmissionRow {
            submission_key: key.clone(),
            listing_id: listing_id.clone(),
            scope_id: row.scope_id.clone(),
            user_id: caller.user_id,
            client_id: client_id.to_owned(),
            submitted_at: now,
            moderation_status: PENDING.to_owned(),
            moderation_reason: None,
            platform_item_id: None,
            moderated_by: None,
            moderated_at: None,
        };
        if !tx.insert_submission(&submission)? {
            continue;
        }
        let mut fields = vec![("moderation_status", Value::String(PENDING.to_owned()))];
        let old_reason = tx.field(schema::LISTINGS.name, listing_id, "moderation_reason")?;
        if old_reason.is_some_and(|stored| !stored.value.is_null()) {
            fields.push(("moderation_reason", Value::Null));
        }
        platform_write(tx, clock, "platform", &schema::LISTINGS, listing_id, None, &fields)?;
        recorded.push(key);
    }
    Ok(recorded)
}

/// One submission as the platform's read endpoint shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// The device's submission key.
    pub submission_key: String,
    /// The listing's village when it was submitted.
    pub scope_id: String,
    /// The assistant whose device pushed it (login name).
    pub submitted_by: Option<String>,
    /// The device that pushed it.
    pub client_id: String,
    /// When the server recorded it (Unix ms).
    pub submitted_at: i64,
    /// `pending`, `approved` or `rejected`.
    pub moderation_status: String,
    /// The reason of a rejection.
    pub moderation_reason: Option<String>,
    /// The item id on the selling platform.
    pub platform_item_id: Option<String>,
    /// Who gave the verdict.
    pub moderated_by: Option<String>,
    /// When the verdict was given (Unix ms).
    pub moderated_at: Option<i64>,
}

/// `GET /admin/v1/listings/{id}/submissions` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingSubmissions {
    /// The listing.
    pub listing_id: String,
    /// Its submissions, oldest first.
    pub submissions: Vec<Submission>,
}

/// The submissions of a listing the server knows (404 otherwise).
pub fn listing_submissions(tx: &mut Tx<'_>, listing_id: &str) -> Result<ListingSubmissions> {
    if tx.row(schema::LISTINGS.name, listing_id)?.is_none() {
        return Err(Error::not_found(format!("listing {listing_id} does not exist")));
    }
    let mut submissions = Vec::new();
    for row in tx.submissions(listing_id)? {
        let submitted_by = tx.user_by_id(row.user_id)?.map(|user| user.username);
        submissions.push(Submission {
            submission_key: row.submission_key,
            scope_id: row.scope_id,
            submitted_by,
            client_id: row.client_id,
            submitted_at: row.submitted_at,
            moderation_status: row.moderation_status,
            moderation_reason: row.moderation_reason,
            platform_item_id: row.platform_item_id,
            moderated_by: row.moderated_by,
            moderated_at: row.moderated_at,
        });
    }
    Ok(ListingSubmissions { listing_id: listing_id.to_owned(), submissions })
}

/// One household's share of a sale.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationRequest {
    /// The allocation row's id; a new UUID when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The household credited.
    pub household_id: String,
    /// Grams of produce from this household.
    #[serde(default)]
    pub qty_g: Option<i64>,
    /// Fen credited to this household.
    pub amount_fen: i64,
}

/// `POST /admin/v1/sales`: a sale recorded by the platform and credited to households.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    /// The sale row's id; a new UUID when absent (send one to make retries safe).
    #[serde(default)]
    pub id: Option<String>,
    /// The listing sold.
    pub listing_id: String,
    /// The selling platform's code.
    pub platform: String,
    /// The platform's order number.
    pub order_no: String,
    /// The order date, `YYYY-MM-DD`.
    pub order_date: String,
    /// Units sold.
    pub qty: i64,
    /// Price per unit in fen.
    pub unit_price_fen: i64,
    /// Gross amount in fen.
    pub gross_fen: i64,
    /// What reaches the seller, in fen.
    pub net_to_seller_fen: i64,
    /// The order's status code.
    pub status: String,
    /// Where the buyer is.
    #[serde(default)]
    pub buyer_region: Option<String>,
    /// The households credited; their amounts add up to at most `net_to_seller_fen`.
    pub allocations: Vec<AllocationRequest>,
}

/// The ids a recorded sale got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRecorded {
    /// The sale row.
    pub sale_id: String,
    /// The allocation rows, in request order.
    pub allocation_ids: Vec<String>,
}

/// The namespace of allocation row ids made by the server.
pub const ALLOCATION_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6675_7272_6f77_416c_6c6f_6361_7465_0001);

/// The id of the allocation of `sale_id` to `household_id` when the platform gives none.
pub fn allocation_id(sale_id: &str, household_id: &str) -> String {
    uuid::Uuid::new_v5(&ALLOCATION_NAMESPACE, format!("{sale_id}/{household_id}").as_bytes()).to_string()
}

fn new_or_given_id(id: &Option<String>) -> Result<String> {
    match id {
        Some(id) if uuid::Uuid::parse_str(id).is_ok() => Ok(id.clone()),
        Some(_) => Err(Error::bad_request("invalid_value", "ids are UUIDs")),
        None => Ok(uuid::Uuid::now_v7().to_string()),
    }
}

/// Records a sale and its allocations as platform-written rows: the sale in the listing's
/// village, each allocation in its household's village.
pub fn record_sale(tx: &mut Tx<'_>, clock: &ServerClock, request: &SaleRequest) -> Result<SaleRecorded> {
    let sale_fields: Vec<(&str, Value)> = vec![
        ("listing_id", Value::String(request.listing_id.clone())),
        ("platform", Value::String(request.platform.clone())),
        ("order_no", Value::String(request.order_no.clone())),
        ("order_date", Value::String(request.order_date.clone())),
        ("qty", Value::from(request.qty)),
        ("unit_price_fen", Value::from(request.unit_price_fen)),
        ("gross_fen", Value::from(request.gross_fen)),
        ("net_to_seller_fen", Value::from(request.net_to_seller_fen)),
        ("status", Value::String(request.status.clone())),
        ("buyer_region", request.buyer_region.clone().map(Value::String).unwrap_or(Value::Null)),
    ];
    for (name, value) in &sale_fields {
        check(&schema::SALES, name, value)?;
    }
    // A sale cannot have happened after today; the server knows no time zone, so "today" is the
    // latest date anywhere on Earth, the same rule the core applies to every past date.
    if let Some(date) = validate::parse_date(&request.order_date) {
        validate::check_not_future("order_date", date, validate::latest_date_on_earth())
            .map_err(|failure| Error::bad_request("invalid_value", format!("sales.order_date {} ({})", failure.message_en, failure.code)))?;
    }
    if request.allocations.is_empty() {
        return Err(Error::bad_request("invalid_value", "a sale is credited to at least one household"));
    }
    let total: i64 = request.allocations.iter().map(|allocation| allocation.amount_fen).sum();
    if total > request.net_to_seller_fen {
        return Err(Error::bad_request(
            "invalid_value",
            format!("the allocations add up to {total} fen, more than the {} fen that reach the seller", request.net_to_seller_fen),
        ));
    }
    let listing = tx
        .row("listings", &request.listing_id)?
        .filter(|row| !row.deleted)
        .ok_or_else(|| Error::not_found(format!("listing {} does not exist", request.listing_id)))?;
    let sale_id = new_or_given_id(&request.id)?;
    let mut planned = Vec::new();
    for allocation in &request.allocations {
        let fields: Vec<(&str, Value)> = vec![
            ("sale_id", Value::String(sale_id.clone())),
            ("household_id", Value::String(allocation.household_id.clone())),
            ("qty_g", allocation.qty_g.map(Value::from).unwrap_or(Value::Null)),
            ("amount_fen", Value::from(allocation.amount_fen)),
        ];
        for (name, value) in &fields {
            check(&schema::SALE_ALLOCATIONS, name, value)?;
        }
        let household = tx
            .row("households", &allocation.household_id)?
            .filter(|row| !row.deleted)
            .ok_or_else(|| Error::not_found(format!("household {} does not exist", allocation.household_id)))?;
        // Without a given id, an allocation's id follows from its sale and household, so a
        // retried request with the same sale id credits each household once, never twice.
        let id = match &allocation.id {
            Some(_) => new_or_given_id(&allocation.id)?,
            None => allocation_id(&sale_id, &allocation.household_id),
        };
        if planned.iter().any(|(planned_id, _, _)| *planned_id == id) {
            return Err(Error::bad_request("invalid_value", format!("household {} is credited twice", allocation.household_id)));
        }
        planned.push((id, household.scope_id, fields));
    }
    let sale_fields: Vec<(&str, Value)> = sale_fields.into_iter().filter(|(_, value)| !value.is_null()).collect();
    platform_write(tx, clock, "platform", &schema::SALES, &sale_id, Some(&listing.scope_id), &sale_fields)?;
    let mut allocation_ids = Vec::new();
    for (id, scope, fields) in planned {
        let fields: Vec<(&str, Value)> = fields.into_iter().filter(|(_, value)| !value.is_null()).collect();
        platform_write(tx, clock, "platform", &schema::SALE_ALLOCATIONS, &id, Some(&scope), &fields)?;
        allocation_ids.push(id);
    }
    Ok(SaleRecorded { sale_id, allocation_ids })
}
