//! The only file with `unsafe`: raw `aws-lc-sys` calls for what `aws-lc-rs` does not offer.
//!
//! * RSA: keys of 1024 bits and up built from their PKCS#11 components (aws-lc-rs accepts
//!   2048..8192 only), key generation with any size multiple of 128 and any public exponent, and the
//!   raw private / public operations (`m^d mod n`, `s^e mod n`). All paddings (PKCS#1 v1.5, PSS,
//!   OAEP) are applied in safe Rust in [`crate::padding`], so arbitrary PKCS#11 parameters (PSS
//!   salt length, MGF1 hash, OAEP label) work.
//! * EC: keys from a curve and a scalar or a point, and ECDSA over a caller-supplied hash of any
//!   length (`ECDSA_do_sign` truncates it to the order's bit length as FIPS 186-4 §6.4 says),
//!   output `r || s` of fixed width as PKCS#11 asks.
//!
//! Every aws-lc object is owned by an RAII wrapper that frees it on drop; no raw pointer leaves
//! this file. The aws-lc error queue is cleared after each failed call so it does not grow.

use aws_lc_sys as sys;
use std::ptr::{self, NonNull};
use zeroize::Zeroizing;

/// An aws-lc call failed (bad input or internal error); callers map it to the right `CKR_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failed;

fn failed<T>() -> Result<T, Failed> {
    // SAFETY: ERR_clear_error only touches aws-lc's thread-local error queue.
    unsafe { sys::ERR_clear_error() };
    Err(Failed)
}

/// An owned `BIGNUM`, wiped and freed on drop.
struct Bn(NonNull<sys::BIGNUM>);

impl Bn {
    /// A big-endian unsigned integer (leading zeros allowed).
    fn from_be(bytes: &[u8]) -> Result<Bn, Failed> {
        // SAFETY: `bytes` is a valid slice for `bytes.len()` bytes; a NULL `ret` asks aws-lc to
        // allocate a new BIGNUM, which we own from here on.
        let p = unsafe { sys::BN_bin2bn(bytes.as_ptr(), bytes.len(), ptr::null_mut()) };
        NonNull::new(p).map(Bn).ok_or(Failed).or_else(|_| failed())
    }
    fn as_ptr(&self) -> *const sys::BIGNUM {
        self.0.as_ptr()
    }
}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: we own the BIGNUM (allocated by BN_bin2bn) and free it exactly once.
        unsafe { sys::BN_clear_free(self.0.as_ptr()) }
    }
}

/// The big-endian bytes of a borrowed BIGNUM, without leading zeros ("0" is one zero byte).
///
/// # Safety
/// `bn` must be NULL or point to a valid BIGNUM that outlives this call.
unsafe fn bn_to_vec(bn: *const sys::BIGNUM) -> Option<Zeroizing<Vec<u8>>> {
    if bn.is_null() {
        return None;
    }
    // SAFETY: `bn` is valid per the caller's contract.
    let len = unsafe { sys::BN_num_bytes(bn) } as usize;
    let mut out = Zeroizing::new(vec![0u8; len.max(1)]);
    let n = out.len();
    // SAFETY: `out` has room for `n` bytes; `bn` is valid.
    if unsafe { sys::BN_bn2bin_padded(out.as_mut_ptr(), n, bn) } != 1 {
        // SAFETY: clears the thread-local error queue only.
        unsafe { sys::ERR_clear_error() };
        return None;
    }
    Some(out)
}

/// The components of an RSA key, big-endian. Private ones are wiped on drop.
#[derive(Default)]
pub(crate) struct RsaParts {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Zeroizing<Vec<u8>>,
    pub p: Zeroizing<Vec<u8>>,
    pub q: Zeroizing<Vec<u8>>,
    pub dp: Zeroizing<Vec<u8>>,
    pub dq: Zeroizing<Vec<u8>>,
    pub qinv: Zeroizing<Vec<u8>>,
}

/// An aws-lc `RSA` key (public, or private with or without CRT parameters).
pub(crate) struct Rsa {
    ptr: NonNull<sys::RSA>,
    private: bool,
}

// SAFETY: an aws-lc `RSA` may be used from several threads at once by the operations used here
// (`RSA_sign_raw` / `RSA_verify_raw` take the key's internal lock for the lazily built Montgomery
// and blinding caches; see aws-lc `crypto/fipsmodule/rsa/rsa_impl.c`). aws-lc-rs relies on the same
// guarantee for its `Send + Sync` `rsa::KeyPair`. The key is never mutated after construction.
unsafe impl Send for Rsa {}
// SAFETY: as above.
unsafe impl Sync for Rsa {}

impl Drop for Rsa {
    fn drop(&mut self) {
        // SAFETY: we own the RSA object and free it exactly once (RSA_free wipes private parts).
        unsafe { sys::RSA_free(self.ptr.as_ptr()) }
    }
}

impl Rsa {
    fn wrap(p: *mut sys::RSA, private: bool) -> Result<Rsa, Failed> {
        match NonNull::new(p) {
            Some(ptr) => Ok(Rsa { ptr, private }),
            None => failed(),
        }
    }

    /// A public key from modulus and exponent (aws-lc checks their sizes and that e is odd).
    pub fn new_public(n: &[u8], e: &[u8]) -> Result<Rsa, Failed> {
        let (n, e) = (Bn::from_be(n)?, Bn::from_be(e)?);
        // SAFETY: both BIGNUMs are valid for the call; aws-lc copies them into the new key.
        let p = unsafe { sys::RSA_new_public_key(n.as_ptr(), e.as_ptr()) };
        Rsa::wrap(p, false)
    }

    /// A private key. With all CRT components present the key is checked for consistency
    /// (`RSA_new_private_key` runs `RSA_check_key` once, here, never per operation); without them
    /// a non-CRT key is built from (n, e, d).
    pub fn new_private(c: &RsaParts) -> Result<Rsa, Failed> {
        let n = Bn::from_be(&c.n)?;
        let e = Bn::from_be(&c.e)?;
        let d = Bn::from_be(&c.d)?;
        let crt = [&c.p, &c.q, &c.dp, &c.dq, &c.qinv]
            .iter()
            .all(|v| !v.is_empty());
        let p = if crt {
            let (p, q) = (Bn::from_be(&c.p)?, Bn::from_be(&c.q)?);
            let (dp, dq, qi) = (
                Bn::from_be(&c.dp)?,
                Bn::from_be(&c.dq)?,
                Bn::from_be(&c.qinv)?,
            );
            // SAFETY: all eight BIGNUMs are valid for the call; aws-lc copies them.
            unsafe {
                sys::RSA_new_private_key(
                    n.as_ptr(),
                    e.as_ptr(),
                    d.as_ptr(),
                    p.as_ptr(),
                    q.as_ptr(),
                    dp.as_ptr(),
                    dq.as_ptr(),
                    qi.as_ptr(),
                )
            }
        } else {
            // SAFETY: the three BIGNUMs are valid for the call; aws-lc copies them.
            unsafe { sys::RSA_new_private_key_no_crt(n.as_ptr(), e.as_ptr(), d.as_ptr()) }
        };
        Rsa::wrap(p, true)
    }

    /// Generate a key of `bits` (a multiple of 128, checked by the caller) with exponent `e`.
    pub fn generate(bits: usize, e: &[u8]) -> Result<Rsa, Failed> {
        let e = Bn::from_be(e)?;
        let bits = std::os::raw::c_int::try_from(bits).map_err(|_| Failed)?;
        // SAFETY: RSA_new allocates an empty key that `wrap` takes ownership of (freed on drop,
        // also on the error path below).
        let key = Rsa::wrap(unsafe { sys::RSA_new() }, true)?;
        // SAFETY: `key` is a fresh RSA we own exclusively; `e` is valid; no callback.
        if unsafe { sys::RSA_generate_key_ex(key.ptr.as_ptr(), bits, e.as_ptr(), ptr::null_mut()) }
            != 1
        {
            return failed();
        }
        Ok(key)
    }

    /// The modulus length in bytes (`k` in RFC 8017).
    pub fn size(&self) -> usize {
        // SAFETY: `ptr` is a valid RSA for the lifetime of `self`.
        unsafe { sys::RSA_size(self.ptr.as_ptr()) as usize }
    }

    /// The modulus length in bits.
    pub fn bits(&self) -> usize {
        // SAFETY: `ptr` is a valid RSA for the lifetime of `self`.
        unsafe { sys::RSA_bits(self.ptr.as_ptr()) as usize }
    }

    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The raw private-key operation (RSASP1 / RSADP, RFC 8017 §5.1.2/§5.2.1) on `input`, which
    /// must be exactly [`Rsa::size`] bytes and below the modulus. Uses CRT and blinding, and aws-lc
    /// checks the result against the public key (fault attacks).
    pub fn private_raw(&self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>, Failed> {
        if !self.private || input.len() != self.size() {
            return Err(Failed);
        }
        let mut out = Zeroizing::new(vec![0u8; input.len()]);
        let mut out_len = 0usize;
        // SAFETY: `out` has room for `out.len()` bytes, `input` is valid for its length, the key
        // is valid and may be used concurrently (see the `Sync` impl). aws-lc writes at most
        // `max_out` bytes and stores the count in `out_len`.
        let ok = unsafe {
            sys::RSA_sign_raw(
                self.ptr.as_ptr(),
                &mut out_len,
                out.as_mut_ptr(),
                out.len(),
                input.as_ptr(),
                input.len(),
                sys::RSA_NO_PADDING,
            )
        };
        if ok != 1 || out_len != out.len() {
            return failed();
        }
        Ok(out)
    }

    /// The raw public-key operation (RSAVP1 / RSAEP) on `input` of exactly [`Rsa::size`] bytes.
    pub fn public_raw(&self, input: &[u8]) -> Result<Vec<u8>, Failed> {
        if input.len() != self.size() {
            return Err(Failed);
        }
        let mut out = vec![0u8; input.len()];
        let mut out_len = 0usize;
        // SAFETY: as in `private_raw`; the public operation only reads the key.
        let ok = unsafe {
            sys::RSA_verify_raw(
                self.ptr.as_ptr(),
                &mut out_len,
                out.as_mut_ptr(),
                out.len(),
                input.as_ptr(),
                input.len(),
                sys::RSA_NO_PADDING,
            )
        };
        if ok != 1 || out_len != out.len() {
            return failed();
        }
        Ok(out)
    }

    /// The key's components (private ones empty for a public key).
    pub fn parts(&self) -> RsaParts {
        let (mut n, mut e, mut d) = (ptr::null(), ptr::null(), ptr::null());
        let (mut p, mut q) = (ptr::null(), ptr::null());
        let (mut dp, mut dq, mut qi) = (ptr::null(), ptr::null(), ptr::null());
        // SAFETY: the getters store borrowed pointers (or NULL) into our locals; the key outlives
        // every use of them below, and nothing mutates it meanwhile.
        unsafe {
            sys::RSA_get0_key(self.ptr.as_ptr(), &mut n, &mut e, &mut d);
            sys::RSA_get0_factors(self.ptr.as_ptr(), &mut p, &mut q);
            sys::RSA_get0_crt_params(self.ptr.as_ptr(), &mut dp, &mut dq, &mut qi);
        }
        // SAFETY: each pointer is NULL or a BIGNUM owned by the live key.
        let get = |b| unsafe { bn_to_vec(b) }.unwrap_or_default();
        let mut parts = RsaParts {
            n: get(n).to_vec(),
            e: get(e).to_vec(),
            ..Default::default()
        };
        if self.private {
            parts.d = get(d);
            parts.p = get(p);
            parts.q = get(q);
            parts.dp = get(dp);
            parts.dq = get(dq);
            parts.qinv = get(qi);
        }
        parts
    }
}

/// The named curves Klyuch supports, by aws-lc NID.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Nid {
    P256,
    P384,
    P521,
}

impl Nid {
    fn raw(self) -> std::os::raw::c_int {
        match self {
            Nid::P256 => sys::NID_X9_62_prime256v1,
            Nid::P384 => sys::NID_secp384r1,
            Nid::P521 => sys::NID_secp521r1,
        }
    }
}

/// An aws-lc `EC_KEY` on a named prime curve: a public key, or a private key with its public
/// point computed once at construction.
pub(crate) struct EcKey {
    ptr: NonNull<sys::EC_KEY>,
    private: bool,
    /// Bytes of a field element / scalar (32, 48, 66).
    width: usize,
}

// SAFETY: the EC_KEY is fully built (private scalar and public point set) before it is shared and
// never mutated afterwards; `ECDSA_do_sign`/`ECDSA_do_verify` take a `const EC_KEY *` and are safe to
// call concurrently (aws-lc `include/openssl/ec_key.h`: "non-mutating functions may be used
// concurrently"). aws-lc-rs' `EcdsaKeyPair` is `Send + Sync` on the same basis.
unsafe impl Send for EcKey {}
// SAFETY: as above.
unsafe impl Sync for EcKey {}

impl Drop for EcKey {
    fn drop(&mut self) {
        // SAFETY: we own the EC_KEY and free it exactly once (EC_KEY_free wipes the scalar).
        unsafe { sys::EC_KEY_free(self.ptr.as_ptr()) }
    }
}

/// An owned `EC_POINT`, freed on drop.
struct Point(NonNull<sys::EC_POINT>);

impl Drop for Point {
    fn drop(&mut self) {
        // SAFETY: we own the point and free it exactly once.
        unsafe { sys::EC_POINT_free(self.0.as_ptr()) }
    }
}

/// An owned `ECDSA_SIG`, freed on drop.
struct Sig(NonNull<sys::ECDSA_SIG>);

impl Drop for Sig {
    fn drop(&mut self) {
        // SAFETY: we own the signature and free it exactly once.
        unsafe { sys::ECDSA_SIG_free(self.0.as_ptr()) }
    }
}

impl EcKey {
    fn new(nid: Nid) -> Result<EcKey, Failed> {
        // SAFETY: allocates a fresh EC_KEY on a built-in group; ownership goes to the wrapper.
        let p = unsafe { sys::EC_KEY_new_by_curve_name(nid.raw()) };
        let ptr = match NonNull::new(p) {
            Some(p) => p,
            None => return failed(),
        };
        let mut k = EcKey {
            ptr,
            private: false,
            width: 0,
        };
        // SAFETY: the key is valid and has a group; EC_GROUP_get_degree reads it.
        let bits = unsafe { sys::EC_GROUP_get_degree(sys::EC_KEY_get0_group(k.ptr.as_ptr())) };
        k.width = (bits as usize).div_ceil(8);
        Ok(k)
    }

    fn group(&self) -> *const sys::EC_GROUP {
        // SAFETY: the key is valid; the group is owned by the key (or static) and outlives it.
        unsafe { sys::EC_KEY_get0_group(self.ptr.as_ptr()) }
    }

    fn new_point(&self) -> Result<Point, Failed> {
        // SAFETY: the group is valid; the new point is owned by the wrapper.
        let p = unsafe { sys::EC_POINT_new(self.group()) };
        match NonNull::new(p) {
            Some(p) => Ok(Point(p)),
            None => failed(),
        }
    }

    /// A public key from an encoded point (SEC 1 §2.3.4; aws-lc checks that it is on the curve
    /// and not the point at infinity).
    pub fn from_public(nid: Nid, point: &[u8]) -> Result<EcKey, Failed> {
        let k = EcKey::new(nid)?;
        let pt = k.new_point()?;
        // SAFETY: group, point and input slice are valid; NULL BN_CTX lets aws-lc allocate one.
        let ok = unsafe {
            sys::EC_POINT_oct2point(
                k.group(),
                pt.0.as_ptr(),
                point.as_ptr(),
                point.len(),
                ptr::null_mut(),
            )
        };
        if ok != 1 {
            return failed();
        }
        // SAFETY: the key and the point are valid; aws-lc copies the point.
        if unsafe { sys::EC_KEY_set_public_key(k.ptr.as_ptr(), pt.0.as_ptr()) } != 1 {
            return failed();
        }
        // SAFETY: the key is valid.
        if unsafe { sys::EC_KEY_check_key(k.ptr.as_ptr()) } != 1 {
            return failed();
        }
        Ok(k)
    }

    /// A private key from its scalar (big-endian, 0 < d < n), with the public point d·G.
    pub fn from_private(nid: Nid, scalar: &[u8]) -> Result<EcKey, Failed> {
        let mut k = EcKey::new(nid)?;
        if scalar.is_empty() || scalar.len() > k.width {
            return Err(Failed);
        }
        let d = Bn::from_be(scalar)?;
        // SAFETY: key and BIGNUM are valid; aws-lc copies the scalar and rejects 0 and >= n.
        if unsafe { sys::EC_KEY_set_private_key(k.ptr.as_ptr(), d.as_ptr()) } != 1 {
            return failed();
        }
        let pt = k.new_point()?;
        // SAFETY: group, output point and scalar are valid; computes d·G only (q, m NULL).
        let ok = unsafe {
            sys::EC_POINT_mul(
                k.group(),
                pt.0.as_ptr(),
                d.as_ptr(),
                ptr::null(),
                ptr::null(),
                ptr::null_mut(),
            )
        };
        if ok != 1 {
            return failed();
        }
        // SAFETY: key and point are valid; aws-lc copies the point.
        if unsafe { sys::EC_KEY_set_public_key(k.ptr.as_ptr(), pt.0.as_ptr()) } != 1 {
            return failed();
        }
        k.private = true;
        Ok(k)
    }

    /// Bytes of a field element / scalar: an ECDSA signature is twice this.
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The public point, uncompressed (`04 || X || Y`, SEC 1 §2.3.3).
    pub fn public_point(&self) -> Vec<u8> {
        let mut out = vec![0u8; 1 + 2 * self.width];
        // SAFETY: the key is valid and has a public point (set in both constructors); `out` has
        // room for an uncompressed point, and aws-lc writes at most `out.len()` bytes.
        let n = unsafe {
            sys::EC_POINT_point2oct(
                self.group(),
                sys::EC_KEY_get0_public_key(self.ptr.as_ptr()),
                sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED,
                out.as_mut_ptr(),
                out.len(),
                ptr::null_mut(),
            )
        };
        out.truncate(n);
        out
    }

    /// The private scalar, fixed width (empty for a public key).
    pub fn private_scalar(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0u8; self.width]);
        // SAFETY: the key is valid; the scalar pointer is NULL for a public key.
        let d = unsafe { sys::EC_KEY_get0_private_key(self.ptr.as_ptr()) };
        if d.is_null() {
            return Zeroizing::new(Vec::new());
        }
        // SAFETY: `out` has `width` bytes and the scalar is below the order, so it fits.
        if unsafe { sys::BN_bn2bin_padded(out.as_mut_ptr(), out.len(), d) } != 1 {
            // SAFETY: clears the thread-local error queue only.
            unsafe { sys::ERR_clear_error() };
            return Zeroizing::new(Vec::new());
        }
        out
    }

    /// ECDSA over a hash of any length (truncated to the order's bit length by aws-lc, FIPS
    /// 186-4 §6.4), as `r || s`, each [`EcKey::width`] bytes.
    pub fn sign_prehash(&self, digest: &[u8]) -> Result<Vec<u8>, Failed> {
        if !self.private {
            return Err(Failed);
        }
        // SAFETY: the digest slice and the key are valid; the key is only read. The returned
        // signature is owned by `Sig` and freed on drop.
        let sig = unsafe { sys::ECDSA_do_sign(digest.as_ptr(), digest.len(), self.ptr.as_ptr()) };
        let sig = match NonNull::new(sig) {
            Some(s) => Sig(s),
            None => return failed(),
        };
        let (mut r, mut s) = (ptr::null(), ptr::null());
        // SAFETY: `sig` is valid; r and s are borrowed from it and used while it lives.
        unsafe { sys::ECDSA_SIG_get0(sig.0.as_ptr(), &mut r, &mut s) };
        let w = self.width;
        let mut out = vec![0u8; 2 * w];
        // SAFETY: r and s are valid BIGNUMs below the order, so each fits in `w` bytes.
        let ok = unsafe {
            sys::BN_bn2bin_padded(out.as_mut_ptr(), w, r) == 1
                && sys::BN_bn2bin_padded(out.as_mut_ptr().add(w), w, s) == 1
        };
        if !ok {
            return failed();
        }
        Ok(out)
    }

    /// Verify `r || s` over a hash of any length. False for any malformed input.
    pub fn verify_prehash(&self, digest: &[u8], rs: &[u8]) -> bool {
        let w = self.width;
        if rs.len() != 2 * w {
            return false;
        }
        let (Ok(r), Ok(s)) = (Bn::from_be(&rs[..w]), Bn::from_be(&rs[w..])) else {
            return false;
        };
        // SAFETY: allocates an empty signature owned by `Sig`.
        let sig = match NonNull::new(unsafe { sys::ECDSA_SIG_new() }) {
            Some(p) => Sig(p),
            None => return failed::<()>().is_ok(),
        };
        // ECDSA_SIG_set0 takes ownership of r and s: hand over the pointers and forget the wrappers.
        let (rp, sp) = (r.0.as_ptr(), s.0.as_ptr());
        // SAFETY: `sig` is valid and empty; on success it owns rp and sp (freed with it).
        if unsafe { sys::ECDSA_SIG_set0(sig.0.as_ptr(), rp, sp) } != 1 {
            return failed::<()>().is_ok();
        }
        std::mem::forget(r);
        std::mem::forget(s);
        // SAFETY: digest, signature and key are valid; nothing is mutated.
        let ok = unsafe {
            sys::ECDSA_do_verify(
                digest.as_ptr(),
                digest.len(),
                sig.0.as_ptr(),
                self.ptr.as_ptr(),
            )
        };
        if ok != 1 {
            return failed::<()>().is_ok();
        }
        true
    }
}

/// An aws-lc AES-GCM `EVP_AEAD_CTX` with any tag length (for the `CK_GCM_PARAMS` IV and tag
/// sizes aws-lc-rs does not offer: IVs other than 96 bits, truncated tags).
pub(crate) struct AesGcm {
    ptr: NonNull<sys::EVP_AEAD_CTX>,
    tag_len: usize,
}

// SAFETY: the context is immutable after `EVP_AEAD_CTX_new`; seal and open take a
// `const EVP_AEAD_CTX *` and may run concurrently (aws-lc `include/openssl/aead.h`).
unsafe impl Send for AesGcm {}
// SAFETY: as above.
unsafe impl Sync for AesGcm {}

impl Drop for AesGcm {
    fn drop(&mut self) {
        // SAFETY: we own the context and free it exactly once (this also wipes the key schedule).
        unsafe { sys::EVP_AEAD_CTX_free(self.ptr.as_ptr()) }
    }
}

impl AesGcm {
    /// A context for a 16/24/32-byte key and a tag of `tag_len` bytes (1..=16).
    pub fn new(key: &[u8], tag_len: usize) -> Result<AesGcm, Failed> {
        // SAFETY: the EVP_aead_* functions return pointers to static method tables.
        let aead = unsafe {
            match key.len() {
                16 => sys::EVP_aead_aes_128_gcm(),
                24 => sys::EVP_aead_aes_192_gcm(),
                32 => sys::EVP_aead_aes_256_gcm(),
                _ => return Err(Failed),
            }
        };
        if !(1..=16).contains(&tag_len) {
            return Err(Failed);
        }
        // SAFETY: `aead` is a valid static table, `key` is valid for its length; aws-lc copies the
        // key; the new context is owned by the wrapper.
        let p = unsafe { sys::EVP_AEAD_CTX_new(aead, key.as_ptr(), key.len(), tag_len) };
        match NonNull::new(p) {
            Some(ptr) => Ok(AesGcm { ptr, tag_len }),
            None => failed(),
        }
    }

    /// Encrypt: ciphertext || tag.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], input: &[u8]) -> Result<Vec<u8>, Failed> {
        let max = input.len().checked_add(self.tag_len).ok_or(Failed)?;
        let mut out = vec![0u8; max];
        let mut out_len = 0usize;
        // SAFETY: all slices are valid for their lengths, `out` has room for `max` bytes which
        // aws-lc never exceeds; the context is only read.
        let ok = unsafe {
            sys::EVP_AEAD_CTX_seal(
                self.ptr.as_ptr(),
                out.as_mut_ptr(),
                &mut out_len,
                max,
                nonce.as_ptr(),
                nonce.len(),
                input.as_ptr(),
                input.len(),
                aad.as_ptr(),
                aad.len(),
            )
        };
        if ok != 1 || out_len > max {
            return failed();
        }
        out.truncate(out_len);
        Ok(out)
    }

    /// Decrypt and check the tag (the last `tag_len` bytes of `input`).
    pub fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        input: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Failed> {
        let mut out = Zeroizing::new(vec![0u8; input.len()]);
        let mut out_len = 0usize;
        // SAFETY: as in `seal`; the plaintext is at most as long as the input.
        let ok = unsafe {
            sys::EVP_AEAD_CTX_open(
                self.ptr.as_ptr(),
                out.as_mut_ptr(),
                &mut out_len,
                input.len(),
                nonce.as_ptr(),
                nonce.len(),
                input.as_ptr(),
                input.len(),
                aad.as_ptr(),
                aad.len(),
            )
        };
        if ok != 1 || out_len > input.len() {
            return failed();
        }
        out.truncate(out_len);
        Ok(out)
    }
}
