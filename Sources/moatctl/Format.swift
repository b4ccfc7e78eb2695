import ArgumentParser
import Foundation
import MoatClient

// Human-readable output: tables, times, durations and enum names.

/// Prints rows under a header in aligned columns; an empty cell shows as `-`.
func printTable(_ header: [String], _ rows: [[String]]) {
    let cells = [header] + rows.map { row in row.map { $0.isEmpty ? "-" : displayText($0) } }
    var widths = header.map(\.count)
    for row in cells {
        for (column, cell) in row.enumerated() where column < widths.count {
            widths[column] = max(widths[column], cell.count)
        }
    }
    for row in cells {
        let padded = row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
        }
        print(padded.joined(separator: "  "))
    }
}

/// Server-supplied text made safe for a terminal: control characters
/// (which could move the cursor or recolour the screen) become `\u{..}`.
func displayText(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isControl) else { return text }
    var out = ""
    for scalar in text.unicodeScalars {
        if isControl(scalar) {
            out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

private func isControl(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.properties.generalCategory == .control { return true }
    // Bidirectional embeddings, overrides and isolates reorder what is shown.
    return (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
}

/// Unix seconds as local `yyyy-MM-dd HH:mm`; `-` for 0 (never set).
func formatTime(_ unix: Int64) -> String {
    guard unix > 0 else { return "-" }
    let parts = localCalendar.dateComponents(
        [.year, .month, .day, .hour, .minute], from: Date(timeIntervalSince1970: TimeInterval(unix)))
    return String(
        format: "%04d-%02d-%02d %02d:%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0, parts.hour ?? 0,
        parts.minute ?? 0)
}

/// Unix seconds as the local date `yyyy-MM-dd`; `-` for 0 (never set).
func formatDate(_ unix: Int64) -> String {
    guard unix > 0 else { return "-" }
    let parts = localCalendar.dateComponents(
        [.year, .month, .day], from: Date(timeIntervalSince1970: TimeInterval(unix)))
    return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
}

/// The current time in Unix seconds.
func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

/// How long ago `unix` was, the way the "Active Sessions" page says it:
/// `just now`, `5 min ago`, `2 h ago`, `3 days ago`, and from a week on with
/// the date, `12 days ago (2025-05-20)`; `-` for 0 (never set). A time ahead
/// of `now` (clock skew) is `just now`.
func formatAgo(_ unix: Int64, now: Int64 = unixNow()) -> String {
    guard unix > 0 else { return "-" }
    let seconds = unix >= now ? 0 : now - unix  // both positive: no overflow
    switch seconds {
    case ..<60: return "just now"
    case ..<3600: return "\(seconds / 60) min ago"
    case ..<86400: return "\(seconds / 3600) h ago"
    default:
        let days = seconds / 86400
        let ago = days == 1 ? "1 day ago" : "\(days) days ago"
        return days < 7 ? ago : "\(ago) (\(formatDate(unix)))"
    }
}

/// A time to come as local `yyyy-MM-dd HH:mm (in 13 days)`, rounded to the
/// nearest unit (a 30-day lifetime that began a minute ago is "in 30 days");
/// `... (passed)` once it is behind `now`; `-` for 0 (never set).
func formatUntil(_ unix: Int64, now: Int64 = unixNow()) -> String {
    guard unix > 0 else { return "-" }
    guard unix > now else { return "\(formatTime(unix)) (passed)" }
    let seconds = unix - now  // both positive: no overflow
    let left: String
    switch seconds {
    case ..<90: left = "in \(seconds) s"
    case ..<5400: left = "in \((seconds + 30) / 60) min"
    case ..<129_600: left = "in \((seconds + 1800) / 3600) h"
    default: left = "in \(seconds / 86400 + (seconds % 86400 >= 43200 ? 1 : 0)) days"
    }
    return "\(formatTime(unix)) (\(left))"
}

/// `yes` / `no`.
func yesNo(_ value: Bool) -> String { value ? "yes" : "no" }

/// Gregorian whatever the locale, in the local time zone.
private let localCalendar: Calendar = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = .current
    return calendar
}()

/// `on` / `off`.
func onOff(_ value: Bool) -> String { value ? "on" : "off" }

/// A tenant role without its enum prefix: `owner`, `admin`, `member`.
func roleName(_ role: Moat_V1_TenantRole) -> String {
    switch role {
    case .owner: "owner"
    case .admin: "admin"
    case .member: "member"
    case .unspecified: "-"
    case .UNRECOGNIZED(let value): "role(\(value))"
    }
}

/// A user status without its enum prefix: `active`, `disabled`,
/// `pending_deletion`.
func statusName(_ status: Moat_V1_UserStatus) -> String {
    switch status {
    case .active: "active"
    case .disabled: "disabled"
    case .pendingDeletion: "pending_deletion"
    case .unspecified: "-"
    case .UNRECOGNIZED(let value): "status(\(value))"
    }
}

// MARK: Durations

/// Parses a duration given with units: `14d`, `36h`, `90m`, `3600s`, `1w`,
/// or several, `1h30m`. A bare number is seconds.
func parseDuration(_ text: String) throws -> UInt64 {
    let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604_800]
    let invalid = ValidationError(
        "'\(text)' is not a duration; use a number with a unit (s, m, h, d, w), e.g. 90m, 36h, 14d, 1h30m.")
    let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
    guard !trimmed.isEmpty else { throw invalid }
    if let seconds = UInt64(trimmed) { return seconds }
    var total: UInt64 = 0
    var number = ""
    for character in trimmed {
        if character.isASCII, character.isNumber {
            number.append(character)
        } else if let unit = units[character], let value = UInt64(number) {
            let (product, overflowA) = value.multipliedReportingOverflow(by: unit)
            let (sum, overflowB) = total.addingReportingOverflow(product)
            guard !overflowA, !overflowB else { throw invalid }
            total = sum
            number = ""
        } else {
            throw invalid
        }
    }
    guard number.isEmpty else { throw invalid }  // trailing digits without a unit
    return total
}
