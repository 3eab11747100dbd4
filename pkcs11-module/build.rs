//! Link flags of libklyuch_pkcs11.so.
fn main() {
    // `-z nodelete`: the module stays mapped after the application's dlclose(). The crypto library
    // registers per-thread destructors (pthread keys) that run when a thread exits, possibly after
    // the application unloaded the module (NSS, p11-kit and libloading all dlclose on finalize);
    // with the code unmapped that is a crash at thread exit. The same holds for any state a
    // thread may still reach. Keeping the module resident costs one mapping per process.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
