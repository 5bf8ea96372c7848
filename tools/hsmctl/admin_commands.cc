#include "tools/hsmctl/admin_commands.h"

#include "common/status_macros.h"
#include "tools/hsmctl/output.h"

namespace hsmd::hsmctl {
namespace {

absl::Status RunStatus(CommandContext& ctx, const ParsedArgs&) {
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::GetStatusResponse status,
                   client->GetStatus(v1::GetStatusRequest()));
  if (ctx.json()) return ctx.PrintJson(status);
  ctx.out() << FormatStatus(status);
  return absl::OkStatus();
}

absl::Status RunStats(CommandContext& ctx, const ParsedArgs&) {
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::GetStatsResponse stats,
                   client->GetStats(v1::GetStatsRequest()));
  if (ctx.json()) return ctx.PrintJson(stats);
  ctx.out() << FormatStats(stats);
  return absl::OkStatus();
}

}  // namespace

std::vector<CommandSpec> AdminCommands() {
  return {
      {
          "status",
          "",
          "Show hsmd's version, uptime, backends and configuration",
          "Backends are listed with their state (READY, DEGRADED, "
          "REINITIALIZING, FAILED),\ntoken, login state and session pool use. "
          "The configuration summary never\ncontains the PIN, only where it "
          "is read from.",
          {},
          0,
          0,
          RunStatus,
      },
      {
          "stats",
          "",
          "Show request counts, errors and latency per operation and key",
          "P50 and P99 are estimated from hsmd's latency histograms "
          "(interpolated within\na bucket); MEAN and MAX are exact. ERROR "
          "CODES counts errors by gRPC code and\nby backend code (e.g. "
          "CKR_KEY_HANDLE_INVALID).",
          {},
          0,
          0,
          RunStats,
      },
  };
}

}  // namespace hsmd::hsmctl
