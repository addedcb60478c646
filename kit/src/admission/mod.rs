//! The admission webhook server every webhook binary shares (filled in next).
