//! Issue 9, acceptance 5: the status page, served by a running daemon,
//! renders in headless Chromium with the live snapshot and the counters;
//! issue 23: over HTTPS it shows the certificate's fingerprint; issue 24:
//! it shows what serves the line.
//!
//! Set `EDGESORT_SCREENSHOT=path.png` to keep the screenshot.

mod chromium;
mod common;

use std::time::Duration;

use common::{Line, enable_tls, write_config};

#[test]
fn the_status_page_shows_the_live_snapshot_and_the_counters() {
    assert!(
        chromium::find_chromium().is_some(),
        "no Chromium: scripts/setup-host.sh installs Debian's chromium (or set $CHROMIUM)"
    );
    let dir = tempfile::tempdir().unwrap();
    let line = Line::start(&write_config(dir.path(), true));
    let status = line.wait_for("parts to be counted", Duration::from_secs(180), |status| {
        status["counts"]["parts"].as_u64().unwrap() >= 2
    });
    let url = format!("{}/#token={}", line.base, line.token);

    let dom = chromium::dump_dom(&url).unwrap();
    let renders: u32 = attribute(&dom, "<body", "data-rendered").parse().unwrap();
    assert!(renders >= 2, "the page rendered the status {renders} times");
    let frame: u64 = attribute(&dom, "id=\"snapshot\"", "data-frame")
        .parse()
        .unwrap();
    assert!(frame > 0, "the snapshot shows frame {frame}");
    let classes = section(&dom, "id=\"class-counts\"");
    for class in status["counts"]["per_class"].as_object().unwrap().keys() {
        assert!(
            classes.contains(class.as_str()),
            "{class} missing from {classes}"
        );
    }
    let parts: u64 = text_of(&dom, "id=\"parts\"").parse().unwrap();
    assert!(parts >= 2, "{parts} parts shown");

    let png = dir.path().join("status-page.png");
    chromium::screenshot(&url, &png, 1280, 900).unwrap();
    let (x, y, width, height) =
        chromium::snapshot_box(&png).expect("the live snapshot is on the screenshot");
    assert_eq!(
        (width, height),
        (640, 360),
        "one screen pixel per frame pixel"
    );
    let colours = chromium::region_colours(&png, x, y, width, height);
    assert!(
        colours > 300,
        "a camera frame, not a placeholder: {colours} colours"
    );
    if let Some(keep) = std::env::var_os("EDGESORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }

    assert_eq!(
        text_of(&dom, "id=\"api-transport\""),
        "plain HTTP (loopback only)"
    );
    // Issue 24: what serves the line, and why not the engine. The test's
    // data folder has no engine in service, so the line runs on the CPU.
    let engine = &status["engine"];
    assert_eq!(text_of(&dom, "id=\"eng-backend\""), "tract (CPU)");
    assert_eq!(text_of(&dom, "id=\"eng-precision\""), "fp32");
    assert_eq!(text_of(&dom, "id=\"eng-key\""), "—");
    assert_eq!(text_of(&dom, "id=\"eng-gpu\""), "—");
    let fallback = engine["fallback"].as_str().expect("a fallback reason");
    assert_eq!(text_of(&dom, "id=\"eng-fallback\""), fallback);

    // Without the token the page shows only its form.
    let dom = chromium::dump_dom(&format!("{}/", line.base)).unwrap();
    assert_eq!(attribute(&dom, "<body", "data-rendered"), "0");
    line.stop();
}

#[test]
fn over_https_the_status_page_shows_the_certificate_fingerprint() {
    assert!(
        chromium::find_chromium().is_some(),
        "no Chromium: scripts/setup-host.sh installs Debian's chromium (or set $CHROMIUM)"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    enable_tls(&config, "");
    let line = Line::start(&config);
    let url = format!("{}/#token={}", line.base, line.token);
    assert!(url.starts_with("https://"), "{url}");
    let dom = chromium::dump_dom(&url).unwrap();
    let renders: u32 = attribute(&dom, "<body", "data-rendered").parse().unwrap();
    assert!(renders >= 1, "the page rendered the status {renders} times");
    assert_eq!(text_of(&dom, "id=\"api-transport\""), "HTTPS");
    assert_eq!(
        text_of(&dom, "id=\"api-cert\""),
        line.fingerprint.unwrap().to_string()
    );
    if let Some(keep) = std::env::var_os("EDGESORT_SCREENSHOT_TLS") {
        chromium::screenshot(&url, std::path::Path::new(&keep), 1280, 900).unwrap();
    }
    line.stop();
}

/// The value of `name` in the first tag that contains `marker`.
fn attribute(dom: &str, marker: &str, name: &str) -> String {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {dom}"));
    let tag_start = dom[..=start].rfind('<').unwrap_or(start);
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>').unwrap()];
    let key = format!("{name}=\"");
    let at = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    tag[at..at + tag[at..].find('"').unwrap()].to_string()
}

/// The markup from the tag that contains `marker` to the next closing table.
fn section<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let end = dom[start..]
        .find("</table>")
        .map_or(dom.len(), |end| start + end);
    &dom[start..end]
}

/// The text inside the element whose tag contains `marker`.
fn text_of(dom: &str, marker: &str) -> String {
    let start = dom.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let open_end = start + dom[start..].find('>').unwrap() + 1;
    let close = open_end + dom[open_end..].find('<').unwrap();
    dom[open_end..close].trim().to_string()
}
