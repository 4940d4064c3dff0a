use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use crate::TlsError;

/// No certificate chain is anywhere near this long; a longer file is not
/// one, and is not read whole.
pub(crate) const MAX_PEM_BYTES: u64 = 1 << 20;

/// The SHA-256 of a certificate's DER encoding: what a client pins. Shown
/// as `openssl x509 -fingerprint -sha256` shows it, upper-case hex pairs
/// joined by colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The fingerprint of the first certificate (the server's own) in the
    /// PEM file at `path`, opened without following a link in its last
    /// component: what a client on the box pins when it can read the file.
    pub fn of_pem_file(path: &Path) -> Result<Fingerprint, TlsError> {
        let pem = read_pem(path, "certificate")?;
        let first = CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap_or(Err(rustls_pki_types::pem::Error::NoItemsFound))
            .map_err(|source| TlsError::Parse {
                what: "certificate",
                path: path.to_owned(),
                source,
            })?;
        Ok(Fingerprint::of(&first))
    }
}

/// The PEM file at `path`, opened as a plain file (no link, no FIFO) and
/// read up to [`MAX_PEM_BYTES`].
pub(crate) fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let read_error = |source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let file = edgesort_types::open_regular_file(path).map_err(|error| {
        let kind = if error.is_not_found() {
            std::io::ErrorKind::NotFound
        } else {
            std::io::ErrorKind::Other
        };
        read_error(std::io::Error::new(kind, error))
    })?;
    let mut pem = Vec::new();
    file.take(MAX_PEM_BYTES)
        .read_to_end(&mut pem)
        .map_err(read_error)?;
    Ok(pem)
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str(":")?;
            }
            write!(formatter, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = TlsError;

    /// Hex in either case, with or without colons; what `openssl x509
    /// -fingerprint -sha256` prints (`sha256 Fingerprint=AB:CD:...`) is
    /// taken whole, so that it can be pasted.
    fn from_str(text: &str) -> Result<Fingerprint, TlsError> {
        let refused = || TlsError::ParseFingerprint {
            text: text.to_owned(),
        };
        let hex_digits = text.rsplit('=').next().unwrap_or(text).trim();
        let digits: Vec<u8> = hex_digits.bytes().filter(|byte| *byte != b':').collect();
        if digits.len() != 64 {
            return Err(refused());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| refused())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| refused())?;
        }
        Ok(Fingerprint(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_as_openssl_does_and_reads_back_in_every_spelling() {
        let fingerprint = Fingerprint::of(b"not really DER");
        let shown = fingerprint.to_string();
        assert_eq!(shown.len(), 32 * 3 - 1);
        assert_eq!(shown, shown.to_uppercase());
        assert_eq!(shown.matches(':').count(), 31);
        for spelling in [
            shown.clone(),
            shown.to_lowercase(),
            shown.replace(':', ""),
            format!("sha256 Fingerprint={shown}"),
            format!("  {shown}\n"),
        ] {
            assert_eq!(spelling.parse::<Fingerprint>().unwrap(), fingerprint);
        }
        let not_hex = format!("G{}", &shown[1..]);
        for wrong in ["", "AB:CD", &shown[3..], &not_hex, "é"] {
            let error = wrong.parse::<Fingerprint>().unwrap_err().to_string();
            assert!(error.contains("not a SHA-256 fingerprint"), "{error}");
        }
    }
}
