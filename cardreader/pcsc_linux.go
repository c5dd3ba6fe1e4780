package cardreader

// pcsc-lite signals reader hot-plug through the PnP pseudo-reader.
const hasPnP = true
