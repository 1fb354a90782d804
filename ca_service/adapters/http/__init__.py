"""HTTP adapters: CRLs, CA certificates and the OCSP responder for relying parties."""
