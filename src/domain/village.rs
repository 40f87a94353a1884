//! 村 Villages: the scopes an assistant works in.

use serde::{Deserialize, Serialize};

use crate::codes::RoadType;
use crate::error::Result;
use crate::schema::VILLAGES;
use crate::store::Store;

/// A village.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Village {
    /// Row id; `None` for a new village.
    pub id: Option<String>,
    /// The village's scope (its code); set by the core.
    pub scope_id: Option<String>,
    /// 12-digit administrative division code (统计用区划代码).
    pub code: Option<String>,
    /// 村名 Name.
    pub name: Option<String>,
    /// 乡镇 Township.
    pub township: Option<String>,
    /// 县 County.
    pub county: Option<String>,
    /// 省 Province.
    pub province: Option<String>,
    /// 贫困村 Whether it is a registered poor village.
    pub is_poverty_village: Option<bool>,
    /// 电商服务站 Whether it has an e-commerce service station.
    pub has_ecommerce_station: Option<bool>,
    /// 快递网点 Whether a courier point is in the village.
    pub has_courier_point: Option<bool>,
    /// 入户路类型 Road type.
    pub road_type: Option<RoadType>,
}

/// The namespace of village row ids. A village's row id is `uuidv5(ROW_NAMESPACE, code)`, the
/// id the sync server gives the village it registers, so a village created on a device before
/// the first sync (demo data, a village typed in offline) is the same row as the server's.
pub const ROW_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6675_7272_6f77_5669_6c6c_6167_6500_0001);

/// The row id of the village with this 12-digit code, the same on every device and server.
pub fn row_id(code: &str) -> String {
    uuid::Uuid::new_v5(&ROW_NAMESPACE, code.as_bytes()).to_string()
}

/// Creates or edits a village.
pub fn save(store: &mut Store, village: &Village) -> Result<Village> {
    super::save(store, &VILLAGES, village.id.as_deref(), village)
}

/// A village by id.
pub fn get(store: &Store, id: &str) -> Result<Village> {
    super::get(store, &VILLAGES, id)
}

/// Every live village, by name.
pub fn list(store: &Store) -> Result<Vec<Village>> {
    let mut villages: Vec<Village> = super::list(store, &VILLAGES, "1", &[])?;
    villages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(villages)
}
