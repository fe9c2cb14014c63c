// Invoices: a tenant's monthly statement of its rated usage.
//
// A line groups the month's charges of one product, item, variant and unit
// price ("gpu_time h100 on-demand at $2.00 per GPU-hour"): its quantity and
// exact amount are the sums of theirs, and its amount is that exact sum
// rounded once, by rating.h's round_line() (to the cent, half to even).
// Adjustments (corrections, credits given) are lines of their own, rounded
// the same way. The invoice's total is the sum of the lines' rounded
// amounts, so every figure on it adds up as printed. The month's charges
// are those whose start lies in [period_start, period_end), the UTC
// calendar month: an interval that straddles midnight at a month's end
// belongs to the month it started in.
//
// Reconciliation. Each line's amount equals round_line(the exact sum of its
// charges) and the total equals the sum of the lines (reconcile() checks
// both against the charges). In the ledger the same charges were posted at
// their exact amounts, so the ledger holds exact_total for the month; the
// invoice's rounding (total - exact_total, under half a cent per line) is
// posted once by rounding_command(), after which the ledger and the invoice
// agree to the nano-dollar.
//
// Pure functions of their inputs; no state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"
#include "ledger/ledger.h"
#include "ledger/rating.h"

namespace headroom::ledger {

struct InvoiceLine {
  Product product = Product::kGpuTime;
  std::string item, variant;
  Money unit_price;           // per GPU-hour or per million tokens
  std::int64_t quantity = 0;  // GPU-ms or tokens
  std::size_t charges = 0;    // how many rated charges it sums
  Amount exact;               // their exact sum
  Money amount;               // round_line(exact)

  // "gpu_time h100 on-demand: 1.5 GPU-hours at $2.00 per GPU-hour"
  std::string description() const;
};

// A correction or credit for the month, exact; negative for the tenant's benefit.
struct InvoiceAdjustment {
  std::string label;  // what people read: "credit for the outage of 3 March"
  Amount amount;
};

struct AdjustmentLine {
  std::string label;
  Amount exact;
  Money amount;  // round_line(exact)
};

struct Invoice {
  std::string tenant_id;
  std::int32_t month = 0;              // yyyymm
  Timestamp period_start, period_end;  // [start, end), UTC
  std::vector<InvoiceLine> lines;      // by product, item, variant, unit price
  std::vector<AdjustmentLine> adjustments;
  Money total;         // the sum of every line's and adjustment's amount
  Amount exact_total;  // the sum of their exact amounts

  // What rounding added (negative: took off): total - exact_total.
  Amount rounding() const { return Amount::from_money(total) - exact_total; }
};

// The statement of `tenant_id` for `month` (yyyymm) from the month's rated
// charges. invalid_argument for a month out of range, a charge of another
// tenant or starting outside the month, the same event twice, too many
// charges or adjustments, or an amount that does not fit Money.
Result<Invoice> make_invoice(std::string_view tenant_id, std::int32_t month, std::span<const RatedCharge> charges,
                             std::span<const InvoiceAdjustment> adjustments = {});

// Checks an invoice against the charges it was made from: every line's
// quantity, count and exact sum, every amount = round_line(exact), the
// totals, and that no charge is missing or extra. conflict naming the first
// difference.
Status reconcile(const Invoice& invoice, std::span<const RatedCharge> charges);

// The transfer that books the invoice's rounding in the ledger: from the
// tenant's account to the rounding account when rounding added, the other
// way when it took off; none when it is zero. Its id derives from the
// tenant and the month, so booking it twice is a no-op. The rounding
// account must be unlimited. Should the tenant's account lack the fraction
// of a cent (kInsufficientFunds), book it against the tenant's receivable
// account instead (set the command's debit to it).
std::optional<Command> rounding_command(const Invoice& invoice, AccountId tenant_account, AccountId rounding_account,
                                        Timestamp at);

}  // namespace headroom::ledger
