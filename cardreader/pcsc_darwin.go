package cardreader

// macOS's CryptoTokenKit PC/SC layer has no PnP pseudo-reader: the monitor
// wakes every readerPollInterval to list the readers instead.
const hasPnP = false
