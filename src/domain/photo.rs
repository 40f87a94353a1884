//! 照片 Photos: import from a file, prepared for the platforms, stored once by content.
//!
//! An imported photo is decoded (JPEG, PNG, WebP; HEIC is refused with a clear message because no
//! decoder for it ships with Furrow), turned upright by its EXIF orientation, scaled so its longest
//! edge is at most 1600 px, and re-encoded as a JPEG of at most 1 MB plus a 320 px thumbnail.
//! Re-encoding drops every piece of metadata, so a photo's location never leaves the laptop inside
//! the image; when the user chooses to keep it, it is read from the EXIF GPS tags and kept in the
//! photo's record instead, where it can be seen and removed. Files are named by their SHA-256 in
//! the media directory, so the same picture is never stored twice.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codes::{PhotoKind, PhotoOwner};
use crate::domain::listing::{self, Photo};
use crate::error::{Error, FieldError, Result};
use crate::media::Attachment;
use crate::schema::PHOTOS;
use crate::store::Store;

pub use crate::media::MediaDir;

/// The longest edge of a listing image, in pixels.
pub const MAX_EDGE_PX: u32 = 1600;
/// The largest listing image, in bytes (the strictest platform's carousel limit).
pub const MAX_IMAGE_BYTES: usize = 1024 * 1024;
/// The longest edge of a thumbnail, in pixels.
pub const THUMBNAIL_EDGE_PX: u32 = 320;
/// The largest file accepted for import.
pub const MAX_IMPORT_BYTES: u64 = 50 * 1024 * 1024;

/// How to import a photo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportOptions {
    /// Keep where the photo was taken (from its EXIF GPS tags) in the photo's record.
    pub keep_location: bool,
    /// Kind; the first photo of a listing becomes its main image when not given.
    pub kind: Option<PhotoKind>,
    /// Caption.
    pub caption: Option<String>,
}

/// An image prepared for the platforms.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The listing image, JPEG.
    pub jpeg: Vec<u8>,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// The thumbnail, JPEG.
    pub thumbnail: Vec<u8>,
    /// Latitude and longitude from the EXIF GPS tags, if any.
    pub location: Option<(f64, f64)>,
}

fn file_error(code: &str, zh: &str, en: &str) -> Error {
    Error::Validation(vec![FieldError::new("file", code, zh, en)])
}

/// Decodes, turns upright, scales and re-encodes an image file's bytes.
pub fn prepare(bytes: &[u8]) -> Result<Prepared> {
    if is_heif(bytes) {
        return Err(file_error(
            "unsupported_format",
            "暂不支持 HEIC/HEIF 格式，请在手机上设为“兼容性最佳”或导出为 JPEG 后再导入",
            "HEIC/HEIF photos are not supported; export the photo as JPEG and import it again",
        ));
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(Error::Io)?;
    if reader.format().is_none() {
        return Err(file_error("not_an_image", "该文件不是图片（支持 JPEG、PNG、WebP）", "is not an image (JPEG, PNG or WebP)"));
    }
    let corrupt = |_: image::ImageError| file_error("corrupt_image", "图片已损坏，无法读取", "the image is damaged and cannot be read");
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(file_error("corrupt_image", "图片已损坏或不完整，无法读取", "the image is damaged or incomplete and cannot be read"));
    }
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    picture.apply_orientation(orientation);
    // A phone photo is scaled down once; the listing image and the thumbnail both start from the
    // scaled picture, so a 12-megapixel file is resampled once rather than twice.
    let picture = scaled_to(picture, MAX_EDGE_PX);
    let (jpeg, width, height) = encode_within(&picture, MAX_EDGE_PX, MAX_IMAGE_BYTES)?;
    let (thumbnail, _, _) = encode_within(&picture, THUMBNAIL_EDGE_PX, 64 * 1024)?;
    Ok(Prepared { jpeg, width, height, thumbnail, location: gps_location(bytes) })
}

/// The picture with its longest edge at most `max_edge` (unchanged when it is smaller).
fn scaled_to(picture: DynamicImage, max_edge: u32) -> DynamicImage {
    if picture.width().max(picture.height()) > max_edge {
        picture.resize(max_edge, max_edge, image::imageops::FilterType::CatmullRom)
    } else {
        picture
    }
}

/// Scales `picture` to at most `max_edge` and encodes it as a JPEG of at most `max_bytes`,
/// lowering the quality and then the size until it fits.
fn encode_within(picture: &DynamicImage, max_edge: u32, max_bytes: usize) -> Result<(Vec<u8>, u32, u32)> {
    let mut edge = max_edge;
    loop {
        let scaled = if picture.width().max(picture.height()) > edge {
            picture.resize(edge, edge, image::imageops::FilterType::CatmullRom)
        } else {
            picture.clone()
        };
        let rgb = scaled.to_rgb8();
        for quality in [85u8, 75, 65] {
            let mut out = Vec::new();
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
            encoder.encode_image(&rgb).map_err(|error| Error::Io(std::io::Error::other(error)))?;
            if out.len() <= max_bytes {
                return Ok((out, rgb.width(), rgb.height()));
            }
        }
        edge = edge * 4 / 5;
    }
}

/// Whether a JPEG ends its last scan with an end-of-image marker. The decoder fills a truncated
/// file (an interrupted copy from a phone) with grey instead of failing, which would put a
/// half-grey picture on a listing. Inside entropy-coded data 0xFF is always followed by 0x00 or a
/// restart marker, so an end marker after the last start-of-scan means the scan is whole.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(last_scan) = bytes.windows(2).rposition(|pair| pair == [0xFF, 0xDA]) else { return false };
    bytes[last_scan..].windows(2).any(|pair| pair == [0xFF, 0xD9])
}

/// Whether the bytes are an ISO-BMFF HEIC/HEIF file (an `ftyp` box with a HEIF brand).
fn is_heif(bytes: &[u8]) -> bool {
    bytes.len() >= 12
        && &bytes[4..8] == b"ftyp"
        && matches!(&bytes[8..12], b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"avif")
}

/// Latitude and longitude from the EXIF GPS tags, in decimal degrees.
fn gps_location(bytes: &[u8]) -> Option<(f64, f64)> {
    let exif = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)).ok()?;
    let degrees = |tag: exif::Tag, reference: exif::Tag, negative: &str| -> Option<f64> {
        let field = exif.get_field(tag, exif::In::PRIMARY)?;
        let exif::Value::Rational(parts) = &field.value else { return None };
        if parts.len() < 3 {
            return None;
        }
        let value = parts[0].to_f64() + parts[1].to_f64() / 60.0 + parts[2].to_f64() / 3600.0;
        let sign = exif
            .get_field(reference, exif::In::PRIMARY)
            .map(|field| field.display_value().to_string())
            .filter(|text| text.contains(negative))
            .map(|_| -1.0)
            .unwrap_or(1.0);
        Some(value * sign)
    };
    let latitude = degrees(exif::Tag::GPSLatitude, exif::Tag::GPSLatitudeRef, "S")?;
    let longitude = degrees(exif::Tag::GPSLongitude, exif::Tag::GPSLongitudeRef, "W")?;
    ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude)).then_some((latitude, longitude))
}

/// Imports a photo file for an owner (a listing, product, visit, household or training): prepares
/// it, stores the image and its thumbnail by content, registers the image for upload, and records
/// the photo through the write path. A file that cannot be used is refused with a clear message
/// and nothing is saved.
pub fn import(
    store: &mut Store,
    media: &MediaDir,
    file: &Path,
    owner_type: PhotoOwner,
    owner_id: &str,
    options: &ImportOptions,
) -> Result<Photo> {
    let size = std::fs::metadata(file)
        .map_err(|_| file_error("file_unreadable", "无法读取该文件", "the file cannot be read"))?
        .len();
    if size > MAX_IMPORT_BYTES {
        return Err(file_error("file_too_large", "文件过大（最大 50 MB）", "the file is too large (at most 50 MB)"));
    }
    let bytes = std::fs::read(file).map_err(|_| file_error("file_unreadable", "无法读取该文件", "the file cannot be read"))?;
    import_bytes(store, media, &bytes, owner_type, owner_id, options)
}

/// Imports a photo from a file's bytes (a file the user picked in the window): the same
/// preparation, storage and checks as [`import`], without a path on this machine.
pub fn import_bytes(
    store: &mut Store,
    media: &MediaDir,
    bytes: &[u8],
    owner_type: PhotoOwner,
    owner_id: &str,
    options: &ImportOptions,
) -> Result<Photo> {
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        return Err(file_error("file_too_large", "文件过大（最大 50 MB）", "the file is too large (at most 50 MB)"));
    }
    let prepared = prepare(bytes)?;
    let existing = listing::photos_of(store, owner_type, owner_id)?;
    let kind = options.kind.unwrap_or(if owner_type == PhotoOwner::Listing && existing.is_empty() {
        PhotoKind::Main
    } else if owner_type == PhotoOwner::Listing {
        PhotoKind::Carousel
    } else {
        PhotoKind::Evidence
    });
    let location = if options.keep_location { prepared.location } else { None };
    let photo = Photo {
        owner_type: Some(owner_type),
        owner_id: Some(owner_id.to_owned()),
        sha256: Some(hex::encode(Sha256::digest(&prepared.jpeg))),
        bytes: Some(prepared.jpeg.len() as i64),
        width_px: Some(i64::from(prepared.width)),
        height_px: Some(i64::from(prepared.height)),
        mime: Some("image/jpeg".into()),
        kind: Some(kind),
        order_index: Some(existing.iter().filter_map(|photo| photo.order_index).max().map_or(0, |last| last + 1)),
        caption: options.caption.clone(),
        latitude: location.map(|(latitude, _)| latitude),
        longitude: location.map(|(_, longitude)| longitude),
        thumb_sha256: Some(hex::encode(Sha256::digest(&prepared.thumbnail))),
        ..Photo::default()
    };
    // The record is checked before any file is written, so a refused photo leaves nothing behind.
    let changes = super::changes_of(&PHOTOS, &photo)?;
    let errors = store.check(&PHOTOS, &changes)?;
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let sha256 = media.put(&prepared.jpeg)?;
    let thumbnail_sha = media.put(&prepared.thumbnail)?;
    register_upload(store, media, &sha256)?;
    register_upload(store, media, &thumbnail_sha)?;
    let saved = listing::save_photo(store, &photo)?;
    record_thumbnail(store, &sha256, &prepared.thumbnail)?;
    Ok(saved)
}

/// Queues a stored image for resumable upload to the platform.
fn register_upload(store: &mut Store, media: &MediaDir, sha256: &str) -> Result<()> {
    crate::media::add_attachment(store, &media.path_of(sha256), "image/jpeg")?;
    Ok(())
}

fn record_thumbnail(store: &Store, sha256: &str, thumbnail: &[u8]) -> Result<()> {
    store.conn().execute(
        "INSERT INTO photo_thumbnails (sha256, thumbnail_sha256) VALUES (?1, ?2)
         ON CONFLICT (sha256) DO UPDATE SET thumbnail_sha256 = excluded.thumbnail_sha256",
        [sha256, &hex::encode(Sha256::digest(thumbnail))],
    )?;
    Ok(())
}

/// The thumbnail of an image: the one made on this device, else the one its photo record names
/// (made on another device and downloaded with the sync).
pub fn thumbnail_of(store: &Store, sha256: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    Ok(store
        .conn()
        .query_row(
            "SELECT thumbnail_sha256 FROM photo_thumbnails WHERE sha256 = ?1
             UNION ALL SELECT thumb_sha256 FROM photos WHERE sha256 = ?1 AND thumb_sha256 IS NOT NULL LIMIT 1",
            [sha256],
            |row| row.get(0),
        )
        .optional()?)
}

/// Crops a photo to a square (the main image of most platforms): the given square in pixels of
/// the stored image, or the centred largest square. The cropped image replaces the photo's image.
pub fn crop_square(store: &mut Store, media: &MediaDir, photo_id: &str, square: Option<(u32, u32, u32)>) -> Result<Photo> {
    let photo: Photo = super::get(store, &PHOTOS, photo_id)?;
    let sha256 = photo.sha256.clone().unwrap_or_default();
    let old_thumbnail = photo.thumb_sha256.clone().unwrap_or_default();
    let bytes = std::fs::read(media.path_of(&sha256))
        .map_err(|_| file_error("file_missing", "照片文件尚未下载到本机", "the photo's file is not on this device yet"))?;
    let picture = image::load_from_memory(&bytes).map_err(|_| file_error("corrupt_image", "图片已损坏，无法读取", "the image is damaged and cannot be read"))?;
    let side = picture.width().min(picture.height());
    let (x, y, size) = square.unwrap_or(((picture.width() - side) / 2, (picture.height() - side) / 2, side));
    if size == 0 || x.saturating_add(size) > picture.width() || y.saturating_add(size) > picture.height() {
        return Err(file_error("crop_outside", "裁剪区域超出图片范围", "the crop lies outside the image"));
    }
    let cropped = scaled_to(picture.crop_imm(x, y, size, size), MAX_EDGE_PX);
    let (jpeg, width, height) = encode_within(&cropped, MAX_EDGE_PX, MAX_IMAGE_BYTES)?;
    let (thumbnail, _, _) = encode_within(&cropped, THUMBNAIL_EDGE_PX, 64 * 1024)?;
    let new_sha = media.put(&jpeg)?;
    let thumbnail_sha = media.put(&thumbnail)?;
    register_upload(store, media, &new_sha)?;
    register_upload(store, media, &thumbnail_sha)?;
    let updated = Photo {
        sha256: Some(new_sha.clone()),
        thumb_sha256: Some(thumbnail_sha),
        bytes: Some(jpeg.len() as i64),
        width_px: Some(i64::from(width)),
        height_px: Some(i64::from(height)),
        ..photo
    };
    let saved = listing::save_photo(store, &updated)?;
    record_thumbnail(store, &new_sha, &thumbnail)?;
    if new_sha != sha256 {
        crate::media::forget_unused(store, &sha256)?;
        crate::media::forget_unused(store, &old_thumbnail)?;
    }
    Ok(saved)
}

/// Puts an owner's photos in the given order (ids first to last), in one transaction.
pub fn reorder(store: &mut Store, photo_ids: &[String]) -> Result<()> {
    store.write(|writer| {
        for (index, id) in photo_ids.iter().enumerate() {
            let changes = serde_json::json!({ "order_index": index as i64 });
            writer.save(&PHOTOS, Some(id), changes.as_object().expect("an object").clone())?;
        }
        Ok(())
    })
}

/// Makes a photo its owner's main image; the previous main image becomes a carousel image.
pub fn set_main(store: &mut Store, photo_id: &str) -> Result<()> {
    let photo: Photo = super::get(store, &PHOTOS, photo_id)?;
    let siblings = listing::photos_of(store, photo.owner_type.unwrap_or(PhotoOwner::Listing), photo.owner_id.as_deref().unwrap_or_default())?;
    store.write(|writer| {
        for sibling in siblings.iter().filter(|sibling| sibling.kind == Some(PhotoKind::Main) && sibling.id.as_deref() != Some(photo_id)) {
            let changes = serde_json::json!({ "kind": PhotoKind::Carousel.code() });
            writer.save(&PHOTOS, sibling.id.as_deref(), changes.as_object().expect("an object").clone())?;
        }
        let changes = serde_json::json!({ "kind": PhotoKind::Main.code() });
        writer.save(&PHOTOS, Some(photo_id), changes.as_object().expect("an object").clone())?;
        Ok(())
    })
}

/// A photo by id.
pub fn get(store: &Store, photo_id: &str) -> Result<Photo> {
    super::get(store, &PHOTOS, photo_id)
}

/// Sets or clears a photo's caption.
pub fn set_caption(store: &mut Store, photo_id: &str, caption: Option<&str>) -> Result<Photo> {
    let _: Photo = super::get(store, &PHOTOS, photo_id)?;
    let caption = caption.map(str::trim).filter(|text| !text.is_empty());
    store.write(|writer| {
        let changes = serde_json::json!({ "caption": caption });
        writer.save(&PHOTOS, Some(photo_id), changes.as_object().expect("an object").clone())?;
        Ok(())
    })?;
    super::get(store, &PHOTOS, photo_id)
}

/// Deletes a photo (a tombstone that syncs). When it was its owner's main image, the first of the
/// remaining photos becomes the main image, so a listing never loses its main image silently.
/// The image file stays in the media directory: another photo may use the same content.
pub fn delete(store: &mut Store, photo_id: &str) -> Result<()> {
    let photo: Photo = super::get(store, &PHOTOS, photo_id)?;
    let owner_type = photo.owner_type.unwrap_or(PhotoOwner::Listing);
    let owner_id = photo.owner_id.clone().unwrap_or_default();
    let successor = if photo.kind == Some(PhotoKind::Main) {
        listing::photos_of(store, owner_type, &owner_id)?
            .into_iter()
            .find(|other| other.id.as_deref() != Some(photo_id) && other.kind == Some(PhotoKind::Carousel))
            .and_then(|other| other.id)
    } else {
        None
    };
    store.write(|writer| {
        writer.delete(&PHOTOS, photo_id)?;
        if let Some(next) = &successor {
            let changes = serde_json::json!({ "kind": PhotoKind::Main.code() });
            writer.save(&PHOTOS, Some(next), changes.as_object().expect("an object").clone())?;
        }
        Ok(())
    })?;
    crate::media::forget_unused(store, photo.sha256.as_deref().unwrap_or_default())?;
    crate::media::forget_unused(store, photo.thumb_sha256.as_deref().unwrap_or_default())
}

/// The thumbnail of a stored image as a `data:` URL the window can show without any file access,
/// or `None` when the image (or its thumbnail) is not on this device yet.
pub fn thumbnail_data_url(store: &Store, media: &MediaDir, sha256: &str) -> Result<Option<String>> {
    use base64::Engine;
    let Some(thumbnail) = thumbnail_of(store, sha256)? else { return Ok(None) };
    match std::fs::read(media.path_of(&thumbnail)) {
        Ok(bytes) => Ok(Some(format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::Io(error)),
    }
}

/// A photo's upload to the platform, as its badge shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PhotoUpload {
    /// `pending_upload`, `uploading`, `uploaded` or `failed`; `missing` when the device has no
    /// record of the image (it was made on another device).
    pub state: String,
    /// Bytes the server has acknowledged.
    pub uploaded_bytes: i64,
    /// The image's size in bytes.
    pub size: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl PhotoUpload {
    /// The upload of a photo's image as the attachments registry has it.
    fn of(photo: &Photo, attachment: Option<Attachment>) -> Self {
        match attachment {
            Some(found) => PhotoUpload {
                state: found.state,
                uploaded_bytes: found.uploaded_bytes as i64,
                size: found.size as i64,
                last_error: found.last_error,
            },
            None => PhotoUpload { state: "missing".into(), uploaded_bytes: 0, size: photo.bytes.unwrap_or(0), last_error: None },
        }
    }
}

/// One photo of the strip: its record, its thumbnail and its upload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PhotoView {
    /// The photo's record.
    pub photo: Photo,
    /// The thumbnail as a `data:image/jpeg;base64,...` URL; `None` until it is on this device.
    pub thumbnail: Option<String>,
    /// The upload's state.
    pub upload: PhotoUpload,
}

/// The photo strip of a listing, in order: each photo with its thumbnail as a `data:` URL and
/// its upload's state, so the window never reads files.
pub fn strip(store: &Store, media: &MediaDir, listing_id: &str) -> Result<Vec<PhotoView>> {
    listing::photos_of(store, PhotoOwner::Listing, listing_id)?
        .into_iter()
        .map(|photo| {
            let sha256 = photo.sha256.clone().unwrap_or_default();
            let upload = PhotoUpload::of(&photo, crate::media::attachment(store, &sha256)?);
            Ok(PhotoView { thumbnail: thumbnail_data_url(store, media, &sha256)?, upload, photo })
        })
        .collect()
}

/// The photo strip of the listing a photo belongs to.
pub fn strip_of_photo(store: &Store, media: &MediaDir, photo_id: &str) -> Result<Vec<PhotoView>> {
    let owner = get(store, photo_id)?.owner_id.unwrap_or_default();
    strip(store, media, &owner)
}
