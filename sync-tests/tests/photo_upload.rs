//! A 5 MB photo uploaded through the fault-injecting proxy while the link drops three times in the
//! middle of upload bodies (after the first chunk, halfway, and on the last chunk): each drop costs
//! at most the one chunk that was cut, every resume continues from the server's offset, and the
//! blob the server stores has the photo's SHA-256. The same upload is also run with the server's
//! acknowledgement of a chunk lost after it stored it, the last one included. Runs on both server
//! backends.

use furrow::sync::{self, blobs::ChunkSizes, SyncOptions};
use furrow_sync_tests::proxy::{Fault, FaultProxy};
use furrow_sync_tests::{on_both_backends, wait_for, Backend, Device, OneVillage, TestServer, ASSISTANT, ASSISTANT_PASSWORD, PATIENCE};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// A real JPEG of 5 to 5.5 MiB: camera-like noise at a high quality, which JPEG cannot squeeze.
/// Made once and shared by the tests of this file.
fn noisy_jpeg() -> &'static [u8] {
    static PHOTO: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PHOTO.get_or_init(make_noisy_jpeg)
}

fn make_noisy_jpeg() -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(20_260_301);
    let (mut width, mut height) = (1600u32, 1200u32);
    for _ in 0..6 {
        let pixels: Vec<u8> = (0..width * height * 3).map(|_| rng.u8(..)).collect();
        let picture = image::RgbImage::from_raw(width, height, pixels).expect("a buffer of the right size");
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92).encode_image(&picture).expect("the photo encodes");
        if (5 * MIB..5 * MIB + MIB / 2).contains(&jpeg.len()) {
            return jpeg;
        }
        // The encoded size of noise grows with the pixel count: scale both edges towards 5.25 MiB.
        let scale = ((5.25 * MIB as f64) / jpeg.len() as f64).sqrt();
        width = (f64::from(width) * scale).round() as u32;
        height = (f64::from(height) * scale).round() as u32;
    }
    panic!("no noisy JPEG of about 5 MB could be made");
}

/// The bytes of the upload the server holds: the offset of the open upload, or the whole blob
/// once it is stored.
fn held_by_server(server: &TestServer, sha256: &str, size: u64) -> u64 {
    if server.query_count(&format!("SELECT count(*) FROM blobs WHERE sha256 = '{sha256}'")) == 1 {
        return size;
    }
    server.query_count("SELECT coalesce(max(upload_offset), 0) FROM uploads") as u64
}

/// Which chunk (1-based) a fault cuts, and how.
type Plan = [(u64, Fault); 3];

/// The size of every chunk in the drop tests.
const CHUNK_BYTES: usize = 512 * 1024;

/// Uploads a 5 MB photo through the proxy while `plan(chunks)` cuts three chunks, one sync
/// attempt at a time, and checks what each drop cost and what the server stored.
///
/// The chunks here have one size, half a megabyte.
fn upload_a_5_mb_photo_with_three_drops(backend: Backend, plan: impl Fn(u64) -> Plan) {
    let OneVillage { server, .. } = OneVillage::start(backend);
    let proxy = FaultProxy::start(server.address);
    let mut laptop = Device::new(&proxy.url);
    // Chunks of one size, so each planned drop hits the chunk it names.
    let options = SyncOptions { chunks: ChunkSizes::fixed(CHUNK_BYTES), ..furrow_sync_tests::test_options() };
    laptop.engine = furrow::sync::SyncEngine::new(&proxy.url).expect("an engine").with_options(options);
    laptop.login(ASSISTANT, ASSISTANT_PASSWORD);
    laptop.sync().expect("the first sync on a healthy link");

    let jpeg = noisy_jpeg();
    let picture = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).expect("the photo is a JPEG");
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("walnut-orchard.jpg");
    std::fs::write(&photo, jpeg).unwrap();
    let size = jpeg.len() as u64;
    let chunk = CHUNK_BYTES as u64;
    let chunks = size.div_ceil(chunk);
    let sha = sync::add_attachment(&mut laptop.store(), &photo, "image/jpeg").unwrap();
    assert_eq!(sha, hex::encode(Sha256::digest(jpeg)));

    // Chunk c goes out as the (c + d)-th PATCH when d chunks were cut before it (a chunk whose
    // answer was lost is not sent again: the server holds it).
    let plan = plan(chunks);
    assert!(plan.windows(2).all(|pair| pair[0].0 < pair[1].0) && plan[2].0 <= chunks, "{plan:?} of {chunks} chunks");
    for (index, (target, fault)) in plan.iter().enumerate() {
        let cut_before = plan[..index].iter().filter(|(_, fault)| *fault == Fault::DropMidRequest).count() as u64;
        proxy.inject_nth("PATCH", "/blobs/uploads/", target + cut_before - 1, *fault);
    }

    // One sync attempt at a time, so each drop's cost is measured on its own: of the upload bytes
    // sent in an attempt, all but those the server holds afterwards must be sent again.
    let (mut sent_before, mut held_before, mut drops) = (0u64, 0u64, 0);
    let mut finished = false;
    for attempt in 1..=8 {
        let result = laptop.sync();
        let sent = proxy.traffic("/blobs/uploads/").request_body_bytes;
        // The server keeps the part of a cut chunk once it notices the cut, on its own time, and
        // in one step: wait until it holds more than the device saw acknowledged. Every other
        // outcome is in the server's database before the device learns of it.
        let cut_mid_request = result.is_err() && plan.get(drops).is_some_and(|(_, fault)| *fault == Fault::DropMidRequest);
        let held = if cut_mid_request {
            let acknowledged = sync::attachment(&laptop.store(), &sha).unwrap().unwrap().uploaded_bytes;
            wait_for(PATIENCE, || Some(held_by_server(&server, &sha, size)).filter(|held| *held > acknowledged))
                .unwrap_or_else(|| held_by_server(&server, &sha, size))
        } else {
            held_by_server(&server, &sha, size)
        };
        assert!(held >= held_before, "the server's offset went back from {held_before} to {held}");
        let lost = (sent - sent_before).checked_sub(held - held_before).expect("the server holds no byte that was not sent");
        eprintln!(
            "{} attempt {attempt}: {} bytes sent, the server holds {held} of {size}, {lost} bytes to send again",
            backend.name(),
            sent - sent_before
        );
        assert!(lost <= chunk, "attempt {attempt} lost {lost} bytes, more than one chunk of {chunk}");
        match result {
            Ok(report) => {
                assert_eq!(lost, 0, "a successful attempt loses nothing");
                assert_eq!(report.uploads, 1, "{report:?}");
                finished = true;
                break;
            }
            Err(error) => {
                assert!(error.is_retryable(), "{error}");
                let (target, fault) = plan[drops];
                // The device records each offset the server acknowledged; it resumes from the
                // server's offset, never from zero.
                let acknowledged = sync::attachment(&laptop.store(), &sha).unwrap().unwrap().uploaded_bytes;
                if fault == Fault::DropMidRequest {
                    assert!(lost > 0, "attempt {attempt} failed without cutting chunk {target}: {error}");
                    // The server keeps the part of the cut chunk that arrived; the device asks
                    // for the offset before it goes on.
                    assert!(held >= acknowledged && held - acknowledged < chunk, "the server holds {held}, the device knew {acknowledged}");
                } else {
                    assert_eq!(lost, 0, "attempt {attempt}: the server kept chunk {target} whose answer was lost");
                    let stored = chunk.min(size - (target - 1) * chunk);
                    assert_eq!(acknowledged + stored, held, "only the answer of chunk {target} is missing on the device");
                }
                drops += 1;
            }
        }
        sent_before = sent;
        held_before = held;
    }
    assert!(finished, "the upload did not finish");
    assert_eq!(drops, 3);
    assert_eq!(proxy.injected_total(), 3);

    let uploads = proxy.traffic("/blobs/uploads/");
    let cut = plan.iter().filter(|(_, fault)| *fault == Fault::DropMidRequest).count() as u64;
    assert!(uploads.request_body_bytes >= size, "{uploads:?}");
    assert!(uploads.request_body_bytes <= size + cut * chunk, "{uploads:?}");
    eprintln!(
        "{}: a {:.2} MB photo ({size} bytes, {chunks} chunks of {} KB) dropped 3 times ({plan:?}): {} bytes of upload \
         bodies sent ({:.3} x the file, {} re-sent), {} bytes on the wire with headers, in {} PATCH/HEAD requests",
        backend.name(),
        size as f64 / 1e6,
        chunk / 1024,
        uploads.request_body_bytes,
        uploads.request_body_bytes as f64 / size as f64,
        uploads.request_body_bytes - size,
        uploads.request_bytes,
        uploads.requests
    );

    // What the server stored: one blob of the photo's size and digest, no upload left open, the
    // file's bytes hashing to it, and the same bytes, still the same JPEG, served back.
    let attachment = sync::attachment(&laptop.store(), &sha).unwrap().unwrap();
    assert_eq!((attachment.state.as_str(), attachment.uploaded_bytes), ("uploaded", size));
    assert_eq!(server.query_count(&format!("SELECT count(*) FROM blobs WHERE sha256 = '{sha}' AND size = {size}")), 1);
    assert_eq!(server.query_count("SELECT count(*) FROM uploads"), 0);
    let stored = std::fs::read(server.data_dir().join("blobs").join(&sha[..2]).join(&sha)).expect("the server stores the blob's file");
    assert_eq!(stored.len() as u64, size);
    assert_eq!(hex::encode(Sha256::digest(&stored)), sha, "the stored blob has the photo's SHA-256");
    let downloaded = reqwest::blocking::Client::new()
        .get(format!("{}/blobs/{sha}", server.url))
        .bearer_auth(laptop.access_token())
        .send()
        .unwrap();
    assert!(downloaded.status().is_success(), "{}", downloaded.status());
    let downloaded = downloaded.bytes().unwrap();
    assert_eq!(hex::encode(Sha256::digest(&downloaded)), sha);
    let served = image::load_from_memory_with_format(&downloaded, image::ImageFormat::Jpeg).expect("the served photo decodes");
    assert_eq!((served.width(), served.height()), (picture.width(), picture.height()));
}

fn a_5_mb_photo_dropped_three_times_mid_upload_resends_at_most_one_chunk_per_drop(backend: Backend) {
    // The second chunk, a chunk halfway and the last one (which the server checks against the
    // digest), each cut in the middle of its body.
    upload_a_5_mb_photo_with_three_drops(backend, |chunks| {
        [(2, Fault::DropMidRequest), (chunks / 2 + 1, Fault::DropMidRequest), (chunks, Fault::DropMidRequest)]
    });
}

fn a_5_mb_photo_whose_chunk_answers_are_lost_resends_nothing_the_server_kept(backend: Backend) {
    // The server stores the third chunk and the last one (finishing the blob) but its answers
    // are lost; a chunk halfway is cut in the middle of its body.
    upload_a_5_mb_photo_with_three_drops(backend, |chunks| {
        [(3, Fault::DropAfterCommit), (chunks / 2 + 1, Fault::DropMidRequest), (chunks, Fault::DropAfterCommit)]
    });
}

on_both_backends!(
    a_5_mb_photo_dropped_three_times_mid_upload_resends_at_most_one_chunk_per_drop,
    a_5_mb_photo_whose_chunk_answers_are_lost_resends_nothing_the_server_kept,
);
