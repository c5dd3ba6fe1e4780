package cardreader

// Windows signals reader hot-plug through the PnP pseudo-reader. Its
// smart-card service stops when the last reader goes (SCARD_E_NO_SERVICE /
// SCARD_E_SERVICE_STOPPED) and starts again with the next one, which the
// monitor survives by establishing a new context.
const hasPnP = true
