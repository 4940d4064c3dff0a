//! Which versions a box takes without `--force`: ordered by semver
//! precedence, where build metadata (`+...`) does not count, and never
//! below the box's version floor, the highest version it ever committed.

use std::cmp::Ordering;

use semver::Version;

/// Why installing `version` on a box that has `committed` committed and
/// whose floor is `floor` needs `--force`; `None` when it does not.
pub(crate) fn needs_force(
    version: &Version,
    committed: &Version,
    floor: &Version,
) -> Option<String> {
    match version.cmp_precedence(committed) {
        Ordering::Less => {
            return Some(format!(
                "version {version} is not newer than the committed {committed}; \
                 a downgrade needs --force with a reason"
            ));
        }
        Ordering::Equal => {
            return Some(format!(
                "version {version} is not newer than the committed {committed}: they have \
                 the same precedence (build metadata after `+` does not count); \
                 installing it needs --force with a reason"
            ));
        }
        Ordering::Greater => {}
    }
    if version.cmp_precedence(floor) == Ordering::Less {
        return Some(format!(
            "version {version} is below this box's version floor {floor}, the highest \
             version ever committed here, which a rollback does not lower; \
             installing it needs --force with a reason"
        ));
    }
    None
}

/// Whether `installed` is older than `required`, by precedence.
pub(crate) fn older_than(installed: &Version, required: &Version) -> bool {
    installed.cmp_precedence(required) == Ordering::Less
}

/// The floor once `committed` is committed: it only rises.
pub(crate) fn raised_floor(floor: &Version, committed: &Version) -> Version {
    if older_than(floor, committed) {
        committed.clone()
    } else {
        floor.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn build_metadata_does_not_make_a_version_newer() {
        // `Version`'s own order puts 0.1.0+z after 0.1.0.
        assert!(v("0.1.0+z") > v("0.1.0"));
        let why = needs_force(&v("0.1.0+z"), &v("0.1.0"), &v("0.1.0")).unwrap();
        assert!(
            why.contains("same precedence") && why.contains("--force"),
            "{why}"
        );
        assert!(needs_force(&v("0.1.0"), &v("0.1.0+build.7"), &v("0.1.0")).is_some());
        assert!(needs_force(&v("0.1.1+z"), &v("0.1.0"), &v("0.1.0")).is_none());
    }

    #[test]
    fn older_versions_and_versions_below_the_floor_need_force() {
        let why = needs_force(&v("0.9.0"), &v("1.0.0"), &v("1.0.0")).unwrap();
        assert!(why.contains("not newer"), "{why}");
        // Rolled back from 1.1.0 to 1.0.0: 1.0.5 is newer than what runs,
        // still below what ran.
        let why = needs_force(&v("1.0.5"), &v("1.0.0"), &v("1.1.0")).unwrap();
        assert!(why.contains("floor 1.1.0"), "{why}");
        assert!(needs_force(&v("1.1.0"), &v("1.0.0"), &v("1.1.0")).is_none());
        assert!(needs_force(&v("1.2.0"), &v("1.0.0"), &v("1.1.0")).is_none());
        // A pre-release comes before its release.
        assert!(needs_force(&v("1.1.0-rc.1"), &v("1.0.0"), &v("1.1.0")).is_some());
    }

    #[test]
    fn the_floor_only_rises() {
        assert_eq!(raised_floor(&v("1.1.0"), &v("1.0.0")), v("1.1.0"));
        assert_eq!(raised_floor(&v("1.1.0"), &v("1.2.0")), v("1.2.0"));
        assert_eq!(raised_floor(&v("1.1.0"), &v("1.1.0+z")), v("1.1.0"));
        assert!(older_than(&v("1.0.0"), &v("1.0.1")));
        assert!(!older_than(&v("1.0.0+z"), &v("1.0.0")));
    }
}
