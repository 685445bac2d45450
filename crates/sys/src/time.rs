//! Clock state.

/// Whether the kernel considers the clock synchronized (adjtimex(2)): the state is not
/// `TIME_ERROR` and `STA_UNSYNC` is clear.
pub fn ntp_synchronized() -> std::io::Result<bool> {
    // SAFETY: an all-zero timex with modes = 0 only reads the kernel's state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: tx is valid and writable for the duration of the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reading_the_clock_state_works() {
        assert!(super::ntp_synchronized().is_ok());
    }
}
