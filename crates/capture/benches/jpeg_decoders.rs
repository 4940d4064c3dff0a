//! Which JPEG decoder should capture use? Times each candidate on the same
//! frames, one thread, after a warm-up pass:
//! `cargo bench -p edgesort-capture --bench jpeg_decoders [-- CLIP_DIR]`
//! (default: the shared 1280x720 clip_a when present, else the demo clip).

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let clip = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shared = root.join("../shared/data/clip_a");
            if shared.is_dir() {
                shared
            } else {
                root.join("tests/data/demo_clip")
            }
        });
    let mut paths: Vec<PathBuf> = std::fs::read_dir(clip.join("frames"))
        .expect("clip has frames/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    let jpegs: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    println!("{} frames of {}", jpegs.len(), clip.display());
    println!(
        "{:<14} {:>8} {:>8} {:>8}",
        "decoder", "p50 ms", "p99 ms", "max ms"
    );

    let zune = time(&jpegs, |bytes| {
        edgesort_capture::decode_jpeg_rgb(bytes).unwrap().2
    });
    let jpeg_decoder = time(&jpegs, |bytes| {
        jpeg_decoder::Decoder::new(bytes).decode().unwrap()
    });
    // Both must see the same picture before their speeds mean anything.
    let first_zune = edgesort_capture::decode_jpeg_rgb(&jpegs[0]).unwrap().2;
    let first_other = jpeg_decoder::Decoder::new(&jpegs[0][..]).decode().unwrap();
    let largest_difference = first_zune
        .iter()
        .zip(&first_other)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    print_row("zune-jpeg", &zune);
    print_row("jpeg-decoder", &jpeg_decoder);
    println!("largest pixel difference between the two on frame 0: {largest_difference}");
}

fn time(jpegs: &[Vec<u8>], decode: impl Fn(&[u8]) -> Vec<u8>) -> Vec<Duration> {
    for bytes in jpegs.iter().take(10) {
        std::hint::black_box(decode(bytes));
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        for bytes in jpegs {
            let started = Instant::now();
            std::hint::black_box(decode(bytes));
            times.push(started.elapsed());
        }
    }
    times.sort();
    times
}

fn print_row(name: &str, times: &[Duration]) {
    let at = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{:<14} {:>8.3} {:>8.3} {:>8.3}",
        name,
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
