//! 照片 Photo commands of the listing studio: import a picked file, caption, crop square,
//! reorder, set the main image, delete; every command answers with the owner's photo strip
//! (thumbnails as `data:` URLs and each photo's upload state), so the window never reads files.

use furrow::codes::PhotoOwner;
use furrow::domain::listing;
use furrow::domain::photo::{self, ImportOptions, MediaDir};
use furrow::Store;
use tauri::State;

use crate::error::{CommandError, CommandResult};
use crate::state::AppState;

pub use furrow::domain::photo::{PhotoUpload, PhotoView};

/// The media directory's name inside the data directory.
pub const MEDIA_DIR: &str = "media";

fn media(state: &AppState) -> MediaDir {
    crate::state::media_dir(&state.data_dir)
}

/// Fetches a photo's full image when it was made on another device and only its thumbnail is
/// here (an edit such as a crop needs the image itself); nothing to do when it is here already
/// or the device has never signed in.
async fn fetch_image(state: &AppState, photo_id: &str) -> CommandResult<()> {
    let id = photo_id.to_owned();
    let sha256 = state.with_store(move |store| photo::get(store, &id).map(|photo| photo.sha256.unwrap_or_default())).await?;
    let (Some(engine), false) = (state.engine(), media(state).has(&sha256)) else { return Ok(()) };
    let store = std::sync::Arc::clone(&state.store);
    tauri::async_runtime::spawn_blocking(move || engine.download_photo(&store, &sha256, &|_| {}).map(drop))
        .await
        .map_err(CommandError::background)??;
    Ok(())
}

/// Runs a photo change, then answers with the strip of the listing the photo belongs to.
async fn change(
    state: &AppState,
    photo_id: String,
    work: impl FnOnce(&mut Store, &MediaDir, &str) -> furrow::Result<()> + Send + 'static,
) -> CommandResult<Vec<PhotoView>> {
    let media = media(state);
    state
        .with_store(move |store| {
            work(store, &media, &photo_id)?;
            photo::strip_of_photo(store, &media, &photo_id)
        })
        .await
}

/// The photos of a listing, in order.
#[tauri::command]
pub async fn listing_photos(state: State<'_, AppState>, listing_id: String) -> CommandResult<Vec<PhotoView>> {
    let media = media(&state);
    state.with_store(move |store| photo::strip(store, &media, &listing_id)).await
}

/// Imports a photo the user picked: the file's bytes are the request body, the listing's id the
/// `x-listing-id` header, and `x-keep-location: 1` keeps where it was taken.
#[tauri::command]
pub async fn import_photo(state: State<'_, AppState>, request: tauri::ipc::Request<'_>) -> CommandResult<Vec<PhotoView>> {
    let tauri::ipc::InvokeBody::Raw(bytes) = request.body() else {
        return Err(CommandError::new("invalid_request", "未收到照片文件", "no photo file was sent"));
    };
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let listing_id = header("x-listing-id").filter(|id| !id.is_empty()).ok_or_else(|| {
        CommandError::new("invalid_request", "请先保存商品草稿再添加照片", "save the listing draft before adding photos")
    })?;
    let options = ImportOptions { keep_location: header("x-keep-location").as_deref() == Some("1"), ..ImportOptions::default() };
    let bytes = bytes.clone();
    let media = media(&state);
    state
        .with_store(move |store| {
            listing::get_listing(store, &listing_id)?;
            photo::import_bytes(store, &media, &bytes, PhotoOwner::Listing, &listing_id, &options)?;
            photo::strip(store, &media, &listing_id)
        })
        .await
}

/// Sets or clears a photo's caption.
#[tauri::command]
pub async fn set_photo_caption(state: State<'_, AppState>, photo_id: String, caption: Option<String>) -> CommandResult<Vec<PhotoView>> {
    change(&state, photo_id, move |store, _, id| photo::set_caption(store, id, caption.as_deref()).map(drop)).await
}

/// Crops a photo to its centred largest square.
#[tauri::command]
pub async fn crop_photo_square(state: State<'_, AppState>, photo_id: String) -> CommandResult<Vec<PhotoView>> {
    fetch_image(&state, &photo_id).await?;
    change(&state, photo_id, |store, media, id| photo::crop_square(store, media, id, None).map(drop)).await
}

/// Makes a photo its listing's main image.
#[tauri::command]
pub async fn set_main_photo(state: State<'_, AppState>, photo_id: String) -> CommandResult<Vec<PhotoView>> {
    change(&state, photo_id, |store, _, id| photo::set_main(store, id)).await
}

/// Puts a listing's photos in the given order (ids first to last).
#[tauri::command]
pub async fn reorder_photos(state: State<'_, AppState>, photo_ids: Vec<String>) -> CommandResult<Vec<PhotoView>> {
    let first = photo_ids.first().cloned().unwrap_or_default();
    change(&state, first, move |store, _, _| photo::reorder(store, &photo_ids)).await
}

/// Deletes a photo; when it was the main image, the next photo becomes the main image.
#[tauri::command]
pub async fn delete_photo(state: State<'_, AppState>, photo_id: String) -> CommandResult<Vec<PhotoView>> {
    let media = media(&state);
    state
        .with_store(move |store| {
            let owner = photo::get(store, &photo_id)?.owner_id.unwrap_or_default();
            photo::delete(store, &photo_id)?;
            photo::strip(store, &media, &owner)
        })
        .await
}
