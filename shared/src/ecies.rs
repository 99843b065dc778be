//! ECIES on secp256r1 and secp256k1 (being written).
