package cli

import (
	"context"

	"github.com/fastenhealth/fasten-desktop/internal/lighthouse/gateway"
)

func lighthouseCmd(ctx context.Context, args []string, env Env) error {
	return gateway.Command(ctx, args, env.Stdout, env.Stderr, env.Getenv)
}
