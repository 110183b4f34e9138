//! When to ask for a new certificate. Agent certificates are short-lived (days), so the
//! link renews them itself: once less than a third of the lifetime is left, there is
//! still time for a few hourly attempts before expiry, even across outages.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A certificate's validity window, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
}

impl Validity {
    /// The validity of the first certificate in `cert_pem`; `None` when it does not
    /// parse.
    pub fn of_pem(cert_pem: &str) -> Option<Self> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
        let validity = cert.validity();
        Some(Self {
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// Whether less than a third of the lifetime is left at `now` (Unix seconds),
    /// including when the certificate has expired.
    pub fn renewal_due(&self, now: i64) -> bool {
        let lifetime = i128::from(self.not_after) - i128::from(self.not_before);
        let left = i128::from(self.not_after) - i128::from(now);
        left * 3 < lifetime
    }
}

/// The current time in Unix seconds.
pub fn now_secs() -> i64 {
    languard_shared::wire::now_millis() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_in_the_last_third() {
        let v = Validity {
            not_before: 1_000,
            not_after: 1_000 + 3 * 600,
        };
        assert!(!v.renewal_due(1_000));
        assert!(!v.renewal_due(1_000 + 2 * 600));
        assert!(v.renewal_due(1_000 + 2 * 600 + 1));
        assert!(v.renewal_due(1_000 + 10_000), "expired");
    }

    #[test]
    fn reads_a_real_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 31);
        let pem = params.self_signed(&key).unwrap().pem();
        let v = Validity::of_pem(&pem).unwrap();
        assert_eq!(v.not_after - v.not_before, 30 * 24 * 3600);
        assert_eq!(v.not_before, 1_893_456_000);
        assert!(Validity::of_pem("junk").is_none());
    }
}
