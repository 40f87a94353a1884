//! Photos reach another device lazily, thumbnails first: a laptop imports two photos of a
//! household and syncs; a tablet's sync brings the photo records and both thumbnails (so every
//! photo shows at once) but no full image; a full image is fetched when it is opened, and when the
//! link drops in the middle of it, the next attempt asks only for the bytes still missing and the
//! image is kept only once its bytes match its digest. Runs on both server backends.

use furrow::codes::PhotoOwner;
use furrow::domain::listing;
use furrow::domain::photo::{self, ImportOptions, MediaDir};
use furrow::schema;
use furrow::sync::SyncEngine;
use furrow_sync_tests::proxy::{Fault, FaultProxy};
use furrow_sync_tests::{household_fields, on_both_backends, test_options, Backend, Device, OneVillage, ASSISTANT, ASSISTANT_PASSWORD};
use sha2::{Digest, Sha256};

/// A real photo as a camera makes it: 3000 x 2000 pixels of a gradient with grain, as a JPEG.
fn camera_photo(path: &std::path::Path, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let picture = image::RgbImage::from_fn(3000, 2000, |x, y| {
        let grain = rng.u8(..32);
        image::Rgb([(x / 12) as u8 ^ grain, (y / 8) as u8, ((x + y) / 20) as u8 ^ grain])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&picture).expect("the photo encodes");
    std::fs::write(path, jpeg).expect("the photo is written");
}

fn device_with_media(url: &str, media: &std::path::Path) -> Device {
    let mut device = Device::new(url);
    device.engine = SyncEngine::new(url).expect("an engine").with_options(test_options()).with_media_dir(MediaDir::new(media));
    device
}

fn sha256_of(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("the file reads")))
}

fn thumbnails_come_with_the_sync_and_a_full_image_resumes_after_a_drop(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let files = tempfile::tempdir().unwrap();
    let laptop_media = files.path().join("laptop-media");
    let tablet_media = files.path().join("tablet-media");

    let laptop = device_with_media(&server.url, &laptop_media);
    laptop.login(ASSISTANT, ASSISTANT_PASSWORD);
    laptop.sync().expect("the laptop's first sync");
    let household = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "王大山")).expect("the household saves");
    let mut photos = Vec::new();
    for (index, name) in ["orchard.jpg", "walnuts.jpg"].iter().enumerate() {
        let file = files.path().join(name);
        camera_photo(&file, index as u64 + 7);
        let imported = photo::import(
            &mut laptop.store(),
            &MediaDir::new(&laptop_media),
            &file,
            PhotoOwner::Household,
            &household,
            &ImportOptions::default(),
        )
        .expect("the photo imports");
        photos.push(imported);
    }
    let report = laptop.sync().expect("the laptop uploads its photos");
    assert_eq!(report.uploads, 4, "two images and their two thumbnails are uploaded");

    let proxy = FaultProxy::start(server.address);
    let tablet = device_with_media(&proxy.url, &tablet_media);
    tablet.login(ASSISTANT, ASSISTANT_PASSWORD);
    let report = tablet.sync().expect("the tablet's first sync");
    assert_eq!(report.downloads, 2, "the two thumbnails come with the sync");
    let media = MediaDir::new(&tablet_media);
    let on_tablet = listing::photos_of(&tablet.store(), PhotoOwner::Household, &household).expect("the photos read");
    assert_eq!(on_tablet.len(), 2);
    for photo in &photos {
        let image = photo.sha256.clone().unwrap();
        let thumbnail = photo.thumb_sha256.clone().expect("an imported photo names its thumbnail");
        assert!(media.has(&thumbnail), "the thumbnail is on the tablet");
        assert_eq!(sha256_of(&media.path_of(&thumbnail)), thumbnail, "the thumbnail's bytes match its digest");
        assert!(!media.has(&image), "the full image waits until it is opened");
        let shown = photo::thumbnail_data_url(&tablet.store(), &media, &image).expect("the thumbnail reads");
        assert!(shown.is_some_and(|url| url.starts_with("data:image/jpeg;base64,")), "the tablet shows the photo small");
    }
    let again = tablet.sync().expect("a second sync");
    assert_eq!(again.downloads, 0, "a thumbnail on the device is not fetched again");

    // The first full image is opened while the link cuts the answer halfway.
    let image = photos[0].sha256.clone().unwrap();
    let size = photos[0].bytes.unwrap() as u64;
    let path = format!("/blobs/{image}");
    proxy.reset_traffic();
    proxy.inject(&path, Fault::DropMidResponse);
    let cut = tablet.engine.download_photo(&tablet.store, &image, &|_| {});
    assert!(cut.is_err(), "the cut download fails: {cut:?}");
    assert!(!media.has(&image), "half an image is never kept as the image");
    let kept = std::fs::metadata(media.partial_path_of(&image)).expect("the bytes received are kept").len();
    assert!(kept > 0 && kept < size, "part of the image arrived ({kept} of {size} bytes)");

    proxy.reset_traffic();
    let file = tablet.engine.download_photo(&tablet.store, &image, &|_| {}).expect("the download resumes");
    let resumed = proxy.traffic(&path);
    assert_eq!(resumed.requests, 1);
    assert_eq!(resumed.response_body_bytes, size - kept, "only the missing bytes are sent again");
    assert_eq!(sha256_of(&file), image, "the image arrived whole");
    assert!(!media.partial_path_of(&image).exists(), "the partial file is gone");
    let thumbnails: u64 =
        photos.iter().map(|photo| std::fs::metadata(media.path_of(photo.thumb_sha256.as_deref().unwrap())).unwrap().len()).sum();
    println!(
        "full image of {size} B fetched across a drop: {kept} B before it, {} B after, nothing twice; both thumbnails {thumbnails} B",
        size - kept
    );

    // Opening it again costs nothing; the second image is still only a thumbnail.
    proxy.reset_traffic();
    tablet.engine.download_photo(&tablet.store, &image, &|_| {}).expect("the image is on the device");
    assert_eq!(proxy.traffic(&path).requests, 0);
    assert!(!media.has(photos[1].sha256.as_deref().unwrap()));
}

fn a_damaged_download_is_refused_and_fetched_again_whole(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let files = tempfile::tempdir().unwrap();
    let laptop = device_with_media(&server.url, &files.path().join("laptop-media"));
    laptop.login(ASSISTANT, ASSISTANT_PASSWORD);
    laptop.sync().expect("the laptop's first sync");
    let household = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "王大山")).expect("the household saves");
    let file = files.path().join("orchard.jpg");
    camera_photo(&file, 3);
    let imported =
        photo::import(&mut laptop.store(), &MediaDir::new(files.path().join("laptop-media")), &file, PhotoOwner::Household, &household, &ImportOptions::default())
            .expect("the photo imports");
    laptop.sync().expect("the laptop uploads");

    let tablet_media = files.path().join("tablet-media");
    let tablet = device_with_media(&server.url, &tablet_media);
    tablet.login(ASSISTANT, ASSISTANT_PASSWORD);
    tablet.sync().expect("the tablet syncs");
    let media = MediaDir::new(&tablet_media);
    let image = imported.sha256.unwrap();
    // Bytes from elsewhere sit where the download resumes (a damaged disk, a different file).
    std::fs::create_dir_all(media.partial_path_of(&image).parent().unwrap()).unwrap();
    std::fs::write(media.partial_path_of(&image), b"not the start of this image").unwrap();
    let refused = tablet.engine.download_photo(&tablet.store, &image, &|_| {});
    assert!(matches!(refused, Err(furrow::sync::SyncError::BlobMismatch(_))), "{refused:?}");
    assert!(!media.has(&image), "bytes that do not match the digest are not kept");
    assert!(!media.partial_path_of(&image).exists(), "and the damaged start is thrown away");
    let file = tablet.engine.download_photo(&tablet.store, &image, &|_| {}).expect("the next attempt fetches it whole");
    assert_eq!(sha256_of(&file), image);
}

on_both_backends!(thumbnails_come_with_the_sync_and_a_full_image_resumes_after_a_drop, a_damaged_download_is_refused_and_fetched_again_whole);
