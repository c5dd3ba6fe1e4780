// Command dmpagent is the smart-card agent for French health professionals:
// CPS and Vitale cards, PKCS#11 signing and the DMP, behind a localhost API.
package main

import (
	"os"

	"github.com/dmpagent/dmpagent/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
