#include "ledger/invoice.h"

#include <limits>
#include <map>
#include <tuple>
#include <unordered_set>

namespace headroom::ledger {

namespace {

using LineKey = std::tuple<Product, std::string, std::string, Money>;

LineKey key_of(const RatedCharge& c) { return {c.product, c.item, c.variant, c.unit_price}; }

std::string quantity_words(Product product, std::int64_t quantity) {
  if (product == Product::kTokens) return std::to_string(quantity) + " tokens";
  // GPU-milliseconds as GPU-hours, exactly: whole hours and up to 7 decimals.
  std::string whole = std::to_string(quantity / kMillisPerGpuHour);
  std::int64_t rest = quantity % kMillisPerGpuHour;
  if (rest == 0) return whole + " GPU-hours";
  std::string fraction = std::to_string(rest * 10'000'000 / kMillisPerGpuHour);
  fraction.insert(0, 7 - fraction.size(), '0');
  while (fraction.size() > 1 && fraction.back() == '0') fraction.pop_back();
  return whole + "." + fraction + " GPU-hours";
}

bool valid_month(std::int32_t month) {
  return month / 100 >= 1970 && month / 100 <= 9999 && month % 100 >= 1 && month % 100 <= 12;
}

std::int32_t next_month(std::int32_t month) { return month % 100 == 12 ? (month / 100 + 1) * 100 + 1 : month + 1; }

// The lines of some charges, grouped; the caller has checked them.
Result<std::vector<InvoiceLine>> group(std::span<const RatedCharge> charges) {
  std::map<LineKey, InvoiceLine> lines;
  for (const RatedCharge& c : charges) {
    auto [it, added] = lines.try_emplace(key_of(c));
    InvoiceLine& line = it->second;
    if (added) {
      line.product = c.product;
      line.item = c.item;
      line.variant = c.variant;
      line.unit_price = c.unit_price;
    }
    line.quantity += c.quantity;  // at most kInvoiceCharges * kRatingQuantityMax: checked by the caller
    line.charges += 1;
    line.exact += c.amount;
  }
  std::vector<InvoiceLine> out;
  out.reserve(lines.size());
  for (auto& [key, line] : lines) {
    HR_ASSIGN_OR_RETURN(line.amount, round_line(line.exact));
    out.push_back(std::move(line));
  }
  return out;
}

}  // namespace

std::string InvoiceLine::description() const {
  std::string per = product == Product::kTokens ? "per million tokens" : "per GPU-hour";
  return std::string(product_name(product)) + " " + item + " " + variant + ": " + quantity_words(product, quantity) +
         " at $" + unit_price.to_string() + " " + per;
}

Result<Invoice> make_invoice(std::string_view tenant_id, std::int32_t month, std::span<const RatedCharge> charges,
                             std::span<const InvoiceAdjustment> adjustments) {
  if (!valid_month(month))
    return Status::invalid_argument("invoice month " + std::to_string(month) + ": expected yyyymm");
  if (tenant_id.empty()) return Status::invalid_argument("invoice: no tenant");
  if (charges.size() > limits::kInvoiceCharges) return Status::invalid_argument("invoice: too many charges");
  if (adjustments.size() > limits::kInvoiceAdjustments)
    return Status::invalid_argument("invoice: too many adjustments");
  Invoice invoice;
  invoice.tenant_id = std::string(tenant_id);
  invoice.month = month;
  invoice.period_start = utc_month_start(month);
  invoice.period_end = utc_month_start(next_month(month));

  std::unordered_set<std::string_view> seen;
  seen.reserve(charges.size());
  for (const RatedCharge& c : charges) {
    if (c.tenant_id != tenant_id) {
      return Status::invalid_argument("invoice of " + invoice.tenant_id + ": charge " + c.event_id + " is of tenant " +
                                      c.tenant_id);
    }
    if (c.start < invoice.period_start || c.start >= invoice.period_end) {
      return Status::invalid_argument("invoice of " + invoice.tenant_id + " for " + std::to_string(month) +
                                      ": charge " + c.event_id + " starts outside the month, at " +
                                      to_rfc3339(c.start));
    }
    if (!seen.insert(c.event_id).second) {
      return Status::invalid_argument("invoice of " + invoice.tenant_id + ": charge " + c.event_id + " given twice");
    }
    if (c.quantity < 0 || c.quantity > limits::kRatingQuantityMax || c.amount < Amount()) {
      return Status::invalid_argument("invoice: charge " + c.event_id + " has a quantity or amount out of range");
    }
  }
  HR_ASSIGN_OR_RETURN(invoice.lines, group(charges));
  Amount total_exact;
  AmountUnits total_nanos = 0;
  for (const InvoiceLine& line : invoice.lines) {
    total_exact += line.exact;
    total_nanos += line.amount.nanos();
  }
  for (const InvoiceAdjustment& a : adjustments) {
    if (a.label.empty() || a.label.size() > limits::kInvoiceLabelBytes) {
      return Status::invalid_argument("invoice: an adjustment's label must be 1 to " +
                                      std::to_string(limits::kInvoiceLabelBytes) + " bytes");
    }
    if (a.amount < -kTransferAmountMax || a.amount > kTransferAmountMax) {
      return Status::invalid_argument("invoice: adjustment \"" + a.label + "\" is out of range");
    }
    HR_ASSIGN_OR_RETURN(Money rounded, round_line(a.amount));
    invoice.adjustments.push_back(AdjustmentLine{a.label, a.amount, rounded});
    total_exact += a.amount;
    total_nanos += rounded.nanos();
  }
  if (total_nanos > std::numeric_limits<std::int64_t>::max() ||
      total_nanos < std::numeric_limits<std::int64_t>::min()) {
    return Status::invalid_argument("invoice of " + invoice.tenant_id + ": the total does not fit Money");
  }
  invoice.total = Money::from_nanos(static_cast<std::int64_t>(total_nanos));
  invoice.exact_total = total_exact;
  return invoice;
}

Status reconcile(const Invoice& invoice, std::span<const RatedCharge> charges) {
  auto differs = [&](const std::string& what) {
    return Status::conflict("invoice of " + invoice.tenant_id + " for " + std::to_string(invoice.month) +
                            " does not reconcile: " + what);
  };
  for (const RatedCharge& c : charges) {
    if (c.tenant_id != invoice.tenant_id || c.start < invoice.period_start || c.start >= invoice.period_end) {
      return differs("charge " + c.event_id + " is not of this tenant and month");
    }
  }
  auto expected = group(charges);
  if (!expected) return differs(expected.status().message());
  if (expected->size() != invoice.lines.size()) {
    return differs(std::to_string(invoice.lines.size()) + " lines, the charges make " +
                   std::to_string(expected->size()));
  }
  Amount exact_total;
  AmountUnits total_nanos = 0;
  for (std::size_t i = 0; i < invoice.lines.size(); ++i) {
    const InvoiceLine& got = invoice.lines[i];
    const InvoiceLine& want = (*expected)[i];
    if (std::tie(got.product, got.item, got.variant, got.unit_price) !=
        std::tie(want.product, want.item, want.variant, want.unit_price)) {
      return differs("line " + std::to_string(i + 1) + " is " + got.description() + ", expected " + want.description());
    }
    if (got.quantity != want.quantity || got.charges != want.charges || got.exact != want.exact) {
      return differs("line " + std::to_string(i + 1) + " (" + got.description() + ") sums " +
                     std::to_string(got.charges) + " charges to " + got.exact.to_string() + ", the charges give " +
                     std::to_string(want.charges) + " and " + want.exact.to_string());
    }
    if (got.amount != want.amount) {
      return differs("line " + std::to_string(i + 1) + " is $" + got.amount.to_string() + ", rounding gives $" +
                     want.amount.to_string());
    }
    exact_total += got.exact;
    total_nanos += got.amount.nanos();
  }
  for (const AdjustmentLine& a : invoice.adjustments) {
    auto rounded = round_line(a.exact);
    if (!rounded || *rounded != a.amount) return differs("adjustment \"" + a.label + "\" is not rounded by the rule");
    exact_total += a.exact;
    total_nanos += a.amount.nanos();
  }
  if (invoice.exact_total != exact_total) return differs("the exact total is not the sum of the lines");
  if (AmountUnits{invoice.total.nanos()} != total_nanos) {
    return differs("the total $" + invoice.total.to_string() + " is not the sum of the lines");
  }
  return Status::ok();
}

std::optional<Command> rounding_command(const Invoice& invoice, AccountId tenant_account, AccountId rounding_account,
                                        Timestamp at) {
  Amount rounding = invoice.rounding();
  if (rounding == Amount()) return std::nullopt;
  CreateTransfer t;
  t.id = transfer_id_of("invoice:" + invoice.tenant_id + ":" + std::to_string(invoice.month) + ":rounding");
  t.reference = transfer_id_of("invoice:" + invoice.tenant_id + ":" + std::to_string(invoice.month));
  t.code = TransferCode::kRounding;
  if (rounding > Amount()) {
    t.debit = tenant_account;
    t.credit = rounding_account;
    t.amount = rounding;
  } else {
    t.debit = rounding_account;
    t.credit = tenant_account;
    t.amount = -rounding;
  }
  return Command{at, t, Link::kNone};
}

}  // namespace headroom::ledger
