//! Photo import with real image files: sizes and formats, EXIF orientation and location, a
//! corrupt file, a file that is not an image, and HEIC; crops, order and the main image.

mod common;

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use common::Fixture;
use furrow::codes::{ListingStatus, PhotoKind, PhotoOwner, Platform, ProductCategory, SaleUnit};
use furrow::domain::listing::{self, Listing, Product};
use furrow::domain::photo::{self, ImportOptions, MediaDir};
use furrow::Error;
use image::{ImageEncoder, RgbImage};

/// A noisy picture (noise does not compress, like a real photo of produce).
fn noisy(width: u32, height: u32) -> RgbImage {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state & 0x3f) as u8;
        image::Rgb([((x * 255 / width) as u8).wrapping_add(noise), ((y * 255 / height) as u8).wrapping_add(noise), 120u8.wrapping_add(noise)])
    })
}

fn jpeg(picture: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(picture.as_raw(), picture.width(), picture.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// Inserts an EXIF APP1 segment (orientation, and GPS when given) after the JPEG's SOI marker.
fn with_exif(jpeg: &[u8], orientation: u16, gps: Option<((u32, u32, u32), (u32, u32, u32))>) -> Vec<u8> {
    // A little-endian TIFF structure: IFD0 with Orientation and (optionally) a GPS IFD pointer.
    let mut tiff: Vec<u8> = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
    let entries: u16 = if gps.is_some() { 2 } else { 1 };
    tiff.extend(entries.to_le_bytes());
    tiff.extend([0x12, 0x01, 3, 0]); // Orientation, SHORT
    tiff.extend(1u32.to_le_bytes());
    tiff.extend((orientation as u32).to_le_bytes());
    let gps_ifd_offset = 8 + 2 + 12 * entries as u32 + 4;
    if gps.is_some() {
        tiff.extend([0x25, 0x88, 4, 0]); // GPS IFD pointer, LONG
        tiff.extend(1u32.to_le_bytes());
        tiff.extend(gps_ifd_offset.to_le_bytes());
    }
    tiff.extend(0u32.to_le_bytes());
    if let Some((latitude, longitude)) = gps {
        // Four entries: LatitudeRef, Latitude, LongitudeRef, Longitude; rationals after them.
        let data_offset = gps_ifd_offset + 2 + 12 * 4 + 4;
        tiff.extend(4u16.to_le_bytes());
        tiff.extend([1, 0, 2, 0]);
        tiff.extend(2u32.to_le_bytes());
        tiff.extend(*b"N\0\0\0");
        tiff.extend([2, 0, 5, 0]);
        tiff.extend(3u32.to_le_bytes());
        tiff.extend(data_offset.to_le_bytes());
        tiff.extend([3, 0, 2, 0]);
        tiff.extend(2u32.to_le_bytes());
        tiff.extend(*b"E\0\0\0");
        tiff.extend([4, 0, 5, 0]);
        tiff.extend(3u32.to_le_bytes());
        tiff.extend((data_offset + 24).to_le_bytes());
        tiff.extend(0u32.to_le_bytes());
        for (degrees, minutes, seconds) in [latitude, longitude] {
            for value in [degrees, minutes, seconds] {
                tiff.extend(value.to_le_bytes());
                tiff.extend(1u32.to_le_bytes());
            }
        }
    }
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((segment.len() + 2) as u16).to_be_bytes());
    out.extend(segment);
    out.extend(&jpeg[2..]);
    out
}

struct Studio {
    fixture: Fixture,
    media: MediaDir,
    listing: String,
}

fn studio() -> Studio {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let product = listing::save_product(
        &mut fixture.store,
        &Product { village_id: Some(village), name: Some("薄皮核桃".into()), category: Some(ProductCategory::Nuts), ..Product::default() },
    )
    .unwrap();
    let listing = listing::save_listing(
        &mut fixture.store,
        &Listing {
            product_id: product.id,
            platform: Some(Platform::Pinduoduo),
            title: Some("高坡村薄皮核桃 500g".into()),
            category: Some(ProductCategory::Nuts),
            price_fen: Some(3_990),
            unit: Some(SaleUnit::Jin),
            status: Some(ListingStatus::Draft),
            ..Listing::default()
        },
    )
    .unwrap();
    let media = MediaDir::new(fixture.dir.path().join("media"));
    Studio { fixture, media, listing: listing.id.unwrap() }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn files_in(dir: &Path) -> usize {
    if !dir.exists() {
        return 0;
    }
    walk(dir)
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().map(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() { walk(&path) } else { 1 }
    }).sum()
}

#[test]
fn a_twelve_megapixel_photo_becomes_a_listing_image_under_a_megabyte_stored_once() {
    let mut studio = studio();
    let original = jpeg(&noisy(4000, 3000), 95);
    assert!(original.len() > 3 * 1024 * 1024, "the test photo is realistically large: {} bytes", original.len());
    let file = write(studio.fixture.dir.path(), "IMG_0001.jpg", &original);

    let started = Instant::now();
    let photo = photo::import(&mut studio.fixture.store, &studio.media, &file, PhotoOwner::Listing, &studio.listing, &ImportOptions::default()).unwrap();
    println!("a 12-megapixel photo ({} bytes) was prepared and stored in {:.0} ms", original.len(), started.elapsed().as_secs_f64() * 1000.0);

    assert!(photo.bytes.unwrap() <= 1024 * 1024, "{} bytes", photo.bytes.unwrap());
    assert_eq!((photo.width_px, photo.height_px), (Some(1600), Some(1200)));
    assert_eq!(photo.kind, Some(PhotoKind::Main), "the first photo of a listing is its main image");
    let sha = photo.sha256.clone().unwrap();
    let stored = std::fs::read(studio.media.path_of(&sha)).unwrap();
    assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored)), sha, "stored under its content hash");
    let thumbnail = photo::thumbnail_of(&studio.fixture.store, &sha).unwrap().expect("a thumbnail");
    let thumb = image::load_from_memory(&std::fs::read(studio.media.path_of(&thumbnail)).unwrap()).unwrap();
    assert_eq!(thumb.width().max(thumb.height()), 320);
    let state: String = rusqlite::Connection::open(studio.fixture.path())
        .unwrap()
        .query_row("SELECT state FROM attachments WHERE sha256 = ?1", [&sha], |row| row.get(0))
        .unwrap();
    assert_eq!(state, "pending_upload");

    let files = files_in(&studio.fixture.dir.path().join("media"));
    let again = photo::import(&mut studio.fixture.store, &studio.media, &file, PhotoOwner::Listing, &studio.listing, &ImportOptions::default()).unwrap();
    assert_eq!(again.sha256, photo.sha256);
    assert_eq!(again.kind, Some(PhotoKind::Carousel));
    assert_eq!(files_in(&studio.fixture.dir.path().join("media")), files, "the same picture is never stored twice");
}

#[test]
fn png_and_small_photos_import_at_their_own_size() {
    let mut studio = studio();
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(noisy(800, 600)).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let file = write(studio.fixture.dir.path(), "scan.png", &png);
    let photo = photo::import(&mut studio.fixture.store, &studio.media, &file, PhotoOwner::Listing, &studio.listing, &ImportOptions::default()).unwrap();
    assert_eq!((photo.width_px, photo.height_px), (Some(800), Some(600)), "small photos are not enlarged");
    assert_eq!(photo.mime.as_deref(), Some("image/jpeg"));
}

#[test]
fn a_sideways_photo_is_turned_upright_and_its_location_is_stripped_unless_kept() {
    let mut studio = studio();
    let tagged = with_exif(&jpeg(&noisy(400, 200), 90), 6, Some(((26, 35, 24), (107, 58, 48))));
    let file = write(studio.fixture.dir.path(), "sideways.jpg", &tagged);

    let stripped = photo::import(&mut studio.fixture.store, &studio.media, &file, PhotoOwner::Listing, &studio.listing, &ImportOptions::default()).unwrap();
    assert_eq!((stripped.width_px, stripped.height_px), (Some(200), Some(400)), "orientation 6 is a quarter turn");
    assert_eq!(stripped.latitude, None);
    let bytes = std::fs::read(studio.media.path_of(stripped.sha256.as_deref().unwrap())).unwrap();
    assert!(!bytes.windows(4).any(|window| window == b"Exif"), "no metadata leaves inside the image");

    let kept = photo::import(
        &mut studio.fixture.store,
        &studio.media,
        &file,
        PhotoOwner::Listing,
        &studio.listing,
        &ImportOptions { keep_location: true, ..ImportOptions::default() },
    )
    .unwrap();
    let latitude = kept.latitude.expect("the location was kept");
    let longitude = kept.longitude.expect("the location was kept");
    assert!((latitude - (26.0 + 35.0 / 60.0 + 24.0 / 3600.0)).abs() < 1e-6, "{latitude}");
    assert!((longitude - (107.0 + 58.0 / 60.0 + 48.0 / 3600.0)).abs() < 1e-6, "{longitude}");
}

#[test]
fn files_that_are_not_usable_photos_are_refused_and_nothing_is_saved() {
    let mut studio = studio();
    let good = jpeg(&noisy(300, 300), 90);
    let mut truncated = good[..good.len() / 3].to_vec();
    truncated.extend(vec![0u8; 64]);
    let mut damaged = good.clone();
    for byte in damaged.iter_mut().skip(200).take(400) {
        *byte = 0xFF;
    }
    let mut heic = vec![0, 0, 0, 0x18];
    heic.extend(b"ftypheic\0\0\0\0mif1heic");
    heic.extend(vec![0u8; 100]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("notes.txt", "这不是图片".as_bytes().to_vec(), "not_an_image"),
        ("empty.jpg", Vec::new(), "not_an_image"),
        ("truncated.jpg", truncated, "corrupt_image"),
        ("damaged.jpg", damaged, "corrupt_image"),
        ("IMG_0002.heic", heic, "unsupported_format"),
    ];
    let media_root = studio.fixture.dir.path().join("media");
    for (name, bytes, code) in cases {
        let before = studio.fixture.fingerprint();
        let file = write(studio.fixture.dir.path(), name, &bytes);
        let error = photo::import(&mut studio.fixture.store, &studio.media, &file, PhotoOwner::Listing, &studio.listing, &ImportOptions::default())
            .expect_err(name);
        let Error::Validation(errors) = &error else { panic!("{name}: {error:?}") };
        assert_eq!(errors[0].field, "file", "{name}");
        assert_eq!(errors[0].code, code, "{name}");
        assert!(!errors[0].message_zh.is_empty() && !errors[0].message_en.is_empty());
        assert_eq!(studio.fixture.fingerprint(), before, "{name}: nothing saved");
        assert_eq!(files_in(&media_root), 0, "{name}: no file stored");
    }
    let missing = studio.fixture.dir.path().join("nowhere.jpg");
    let error = photo::import(&mut studio.fixture.store, &studio.media, &missing, PhotoOwner::Listing, &studio.listing, &ImportOptions::default())
        .expect_err("a missing file");
    assert_eq!(error.field_errors()[0].code, "file_unreadable");
}

#[test]
fn photos_are_cropped_square_reordered_and_one_is_the_main_image() {
    let mut studio = studio();
    let mut ids = Vec::new();
    for (index, (width, height)) in [(1200, 800), (900, 900), (640, 960)].into_iter().enumerate() {
        let file = write(studio.fixture.dir.path(), &format!("p{index}.jpg"), &jpeg(&noisy(width, height), 90));
        let photo = photo::import(&mut studio.fixture.store, &studio.media, &file, PhotoOwner::Listing, &studio.listing, &ImportOptions::default()).unwrap();
        ids.push(photo.id.unwrap());
    }
    let before_crop = photo::get(&studio.fixture.store, &ids[0]).unwrap();
    let uncropped = before_crop.sha256.unwrap();
    let uncropped_thumbnail = before_crop.thumb_sha256.expect("an imported photo names its thumbnail");
    let cropped = photo::crop_square(&mut studio.fixture.store, &studio.media, &ids[0], None).unwrap();
    assert_eq!((cropped.width_px, cropped.height_px), (Some(800), Some(800)));
    let queued = |sha: &str| -> i64 {
        rusqlite::Connection::open(studio.fixture.path())
            .unwrap()
            .query_row("SELECT count(*) FROM attachments WHERE sha256 = ?1", [sha], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(queued(&uncropped), 0, "the picture before the crop is never uploaded");
    assert_eq!(queued(&uncropped_thumbnail), 0, "nor its thumbnail");
    assert_eq!(queued(cropped.sha256.as_deref().unwrap()), 1, "the cropped picture is queued");
    let cropped_thumbnail = cropped.thumb_sha256.as_deref().expect("the crop names its new thumbnail");
    assert_ne!(cropped_thumbnail, uncropped_thumbnail);
    assert_eq!(queued(cropped_thumbnail), 1, "with its thumbnail, for other devices to show it small");
    assert!(studio.media.has(cropped_thumbnail));
    let outside = photo::crop_square(&mut studio.fixture.store, &studio.media, &ids[0], Some((700, 0, 200)));
    assert_eq!(outside.unwrap_err().field_errors()[0].code, "crop_outside");

    photo::reorder(&mut studio.fixture.store, &[ids[2].clone(), ids[0].clone(), ids[1].clone()]).unwrap();
    photo::set_main(&mut studio.fixture.store, &ids[2]).unwrap();
    let photos = listing::photos_of(&studio.fixture.store, PhotoOwner::Listing, &studio.listing).unwrap();
    let order: Vec<_> = photos.iter().map(|photo| photo.id.clone().unwrap()).collect();
    assert_eq!(order, vec![ids[2].clone(), ids[0].clone(), ids[1].clone()]);
    let mains: Vec<_> = photos.iter().filter(|photo| photo.kind == Some(PhotoKind::Main)).map(|photo| photo.id.clone().unwrap()).collect();
    assert_eq!(mains, vec![ids[2].clone()], "exactly one main image");
}

#[test]
fn a_photo_picked_in_the_window_imports_from_its_bytes_is_captioned_and_deleted() {
    let mut studio = studio();
    let before = studio.fixture.fingerprint();
    let refused = photo::import_bytes(&mut studio.fixture.store, &studio.media, b"%PDF-1.4", PhotoOwner::Listing, &studio.listing, &ImportOptions::default())
        .expect_err("a PDF is not a photo");
    assert_eq!(refused.field_errors()[0].code, "not_an_image");
    assert_eq!(studio.fixture.fingerprint(), before, "nothing saved");

    let mut ids = Vec::new();
    for (width, height) in [(900, 900), (1200, 800), (800, 1200)] {
        let photo = photo::import_bytes(
            &mut studio.fixture.store,
            &studio.media,
            &jpeg(&noisy(width, height), 90),
            PhotoOwner::Listing,
            &studio.listing,
            &ImportOptions::default(),
        )
        .unwrap();
        ids.push(photo.id.unwrap());
    }
    let first = listing::photos_of(&studio.fixture.store, PhotoOwner::Listing, &studio.listing).unwrap()[0].clone();
    assert_eq!((first.kind, first.width_px), (Some(PhotoKind::Main), Some(900)));
    let url = photo::thumbnail_data_url(&studio.fixture.store, &studio.media, first.sha256.as_deref().unwrap()).unwrap().expect("a thumbnail");
    assert!(url.starts_with("data:image/jpeg;base64,/9j/"), "{}", &url[..40]);
    assert_eq!(photo::thumbnail_data_url(&studio.fixture.store, &studio.media, &"0".repeat(64)).unwrap(), None, "no thumbnail of an unknown image");

    let captioned = photo::set_caption(&mut studio.fixture.store, &ids[1], Some("  晾晒中的核桃  ")).unwrap();
    assert_eq!(captioned.caption.as_deref(), Some("晾晒中的核桃"));
    let cleared = photo::set_caption(&mut studio.fixture.store, &ids[1], Some("   ")).unwrap();
    assert_eq!(cleared.caption, None);
    let long = photo::set_caption(&mut studio.fixture.store, &ids[1], Some(&"长".repeat(201))).expect_err("a caption over 200 characters");
    assert_eq!(long.field_errors()[0].field, "caption");

    // Deleting the main image makes the next photo the main image, and its picture leaves the
    // upload queue.
    let deleted_sha = first.sha256.clone().unwrap();
    let deleted_thumbnail = first.thumb_sha256.clone().unwrap();
    photo::delete(&mut studio.fixture.store, &ids[0]).unwrap();
    let queued: i64 = rusqlite::Connection::open(studio.fixture.path())
        .unwrap()
        .query_row("SELECT count(*) FROM attachments WHERE sha256 IN (?1, ?2)", [&deleted_sha, &deleted_thumbnail], |row| row.get(0))
        .unwrap();
    assert_eq!(queued, 0, "neither the picture nor its thumbnail is uploaded");
    let left = listing::photos_of(&studio.fixture.store, PhotoOwner::Listing, &studio.listing).unwrap();
    let left_ids: Vec<_> = left.iter().map(|photo| photo.id.clone().unwrap()).collect();
    assert_eq!(left_ids, vec![ids[1].clone(), ids[2].clone()]);
    assert_eq!(left[0].kind, Some(PhotoKind::Main));
    assert_eq!(left[1].kind, Some(PhotoKind::Carousel));
    assert!(photo::delete(&mut studio.fixture.store, &ids[0]).is_err(), "a deleted photo is gone");
}

/// The strip the listing studio shows: every photo in order with its thumbnail and how far its
/// upload got; a photo whose image this device never registered (made on another device) shows
/// as missing with its recorded size.
#[test]
fn the_photo_strip_shows_each_photo_with_its_thumbnail_and_upload() {
    let mut studio = studio();
    for (width, height) in [(900, 600), (600, 900)] {
        photo::import_bytes(&mut studio.fixture.store, &studio.media, &jpeg(&noisy(width, height), 90), PhotoOwner::Listing, &studio.listing, &ImportOptions::default())
            .unwrap();
    }
    let strip = photo::strip(&studio.fixture.store, &studio.media, &studio.listing).unwrap();
    assert_eq!(strip.len(), 2);
    for view in &strip {
        assert!(view.thumbnail.as_deref().is_some_and(|url| url.starts_with("data:image/jpeg;base64,")));
        assert_eq!((view.upload.state.as_str(), view.upload.uploaded_bytes), ("pending_upload", 0));
        assert_eq!(Some(view.upload.size), view.photo.bytes);
        assert_eq!(view.upload.last_error, None);
    }
    let second = strip[1].photo.id.clone().unwrap();
    assert_eq!(photo::strip_of_photo(&studio.fixture.store, &studio.media, &second).unwrap(), strip);

    let sha = strip[1].photo.sha256.clone().unwrap();
    rusqlite::Connection::open(studio.fixture.path()).unwrap().execute("DELETE FROM attachments WHERE sha256 = ?1", [&sha]).unwrap();
    let strip = photo::strip(&studio.fixture.store, &studio.media, &studio.listing).unwrap();
    assert_eq!((strip[1].upload.state.as_str(), Some(strip[1].upload.size)), ("missing", strip[1].photo.bytes));
}
