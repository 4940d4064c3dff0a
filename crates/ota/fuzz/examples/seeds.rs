//! Writes the seed corpora (under `corpus/`, which git ignores):
//! - `corpus/package_raw/`: packages made with `edgesort_ota::pack` and
//!   signed with the fixed fuzz key by `edgesort_ota::sign`;
//! - `corpus/manifest/`: their manifest.json entries, plus a few variants;
//! - `corpus/package_signed/`: structured inputs (bytes for `arbitrary`)
//!   that the harness's own builder turns into packages that open, check
//!   and extract cleanly, found by a short seeded random search.
//!
//! Run from `crates/ota/fuzz`: `cargo +nightly run --example seeds`.

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use edgesort_ota::{PackInfo, Trust, VerifiedPackage, pack, sign};
use edgesort_ota_fuzz::{PackageInput, Scratch, now, signing_key, trusted_keys};
use semver::Version;

fn main() {
    let corpus = Path::new("corpus");
    for target in ["manifest", "package_raw", "package_signed"] {
        std::fs::create_dir_all(corpus.join(target)).unwrap();
    }
    let work = std::env::temp_dir().join(format!("edgesort-ota-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let layouts: &[&[(&str, &[u8], bool)]] = &[
        &[("model/detector.onnx", b"onnx-bytes", false)],
        &[
            ("bin/edgesortd", b"\x7fELF daemon", true),
            ("bin/edgesort", b"\x7fELF cli", true),
            ("config/defaults.toml", b"[ota]\nreserve_mib = 64\n", false),
        ],
        &[
            ("model/detector.onnx", &[0u8; 700], false),
            ("calibration/images/0001.jpg", b"\xff\xd8\xff jpeg", false),
            ("calibration/images/0002.jpg", b"", false),
            ("board/pins.toml", b"belt = 17\n", false),
        ],
        &[("os/update.swu", b"swupdate image", false)],
    ];
    for (index, files) in layouts.iter().enumerate() {
        let source = work.join(format!("source{index}"));
        for (path, bytes, executable) in *files {
            let path = source.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            if *executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let out = work.join(format!("package{index}.tar"));
        let manifest = pack(
            &source,
            PackInfo {
                version: Version::new(1, index as u64 + 1, 0),
                min_version: Version::new(1, 0, 0),
                boards: vec!["orin-nano".into(), "orin-nx".into()],
                notes: format!("seed package {index}"),
                created: now(),
                revokes: Vec::new(),
            },
            &out,
        )
        .unwrap();
        sign(&out, &signing_key()).unwrap();
        let package = VerifiedPackage::open(&out, trusted_keys(), &Trust::clock(now())).unwrap();
        package.check_payloads().unwrap();
        std::fs::copy(
            &out,
            corpus
                .join("package_raw")
                .join(format!("packed-{index}.tar")),
        )
        .unwrap();
        std::fs::write(
            corpus.join("manifest").join(format!("packed-{index}.json")),
            manifest.to_bytes(),
        )
        .unwrap();
        std::fs::write(
            corpus
                .join("manifest")
                .join(format!("packed-{index}-compact.json")),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    }
    // An unsigned package too: opens to UnknownKey/Unsigned paths.
    let unsigned = work.join("unsigned.tar");
    pack(
        &work.join("source0"),
        PackInfo {
            version: Version::new(2, 0, 0),
            min_version: Version::new(1, 0, 0),
            boards: vec!["agx-orin".into()],
            notes: String::new(),
            created: now(),
            revokes: Vec::new(),
        },
        &unsigned,
    )
    .unwrap();
    std::fs::copy(&unsigned, corpus.join("package_raw").join("unsigned.tar")).unwrap();

    // Structured seeds: random byte strings whose package extracts cleanly,
    // preferring ones with more payloads.
    let scratch = Scratch::get();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut kept = 0;
    let mut tries = 0;
    while kept < 24 && tries < 20_000 {
        tries += 1;
        let length = 16 + (next() % 600) as usize;
        // Mostly small bytes: the builder's well-formed choices are the
        // first variants and zero knobs.
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                let value = next();
                if value % 4 == 0 {
                    (value >> 8) as u8
                } else {
                    ((value >> 8) % 4) as u8
                }
            })
            .collect();
        let Ok(input) = PackageInput::arbitrary(&mut Unstructured::new(&bytes)) else {
            continue;
        };
        let built = input.build();
        scratch.reset(&built.bytes);
        let Ok(package) =
            VerifiedPackage::open(&scratch.package(), trusted_keys(), &Trust::clock(now()))
        else {
            continue;
        };
        if package.extract(&scratch.out()).is_err() {
            continue;
        }
        if kept >= 8 && package.manifest.payloads.len() < 2 {
            continue;
        }
        std::fs::write(
            corpus
                .join("package_signed")
                .join(format!("seed-{kept:02}")),
            &bytes,
        )
        .unwrap();
        kept += 1;
    }
    // The empty input is the default package: one model payload.
    std::fs::write(corpus.join("package_signed").join("default"), b"").unwrap();
    println!("package_signed: kept {kept} seeds of {tries} tries");
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&scratch.root);
}
