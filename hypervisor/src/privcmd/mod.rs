//! The real Xen backend over Linux's `/dev/xen/privcmd` (feature `hw`). To be filled by
//! the hw issue; for now it opens nothing and every call reports "not implemented".
