// A small user-agent parser for the "Active Sessions" page: device type, OS,
// browser (or app, or bot) and its major version. It is a best-effort summary for
// people, never an input to a security decision: user agents are client-controlled.
//
// How it works: the first `UserAgentInfo.maxExaminedBytes` bytes are split once
// into product tokens (`Name/1.2`) and comment parts (`(a; b; c)`, `[a;b]`), then a
// fixed order of rules looks at those tokens. No regular expressions, no Foundation.
//
// Known limits, on purpose:
// - iPadOS Safari asks for desktop sites by default and then sends a user agent
//   identical to Safari on a Mac; it is reported as macOS / desktop.
// - Browsers freeze parts of the user agent: macOS is always "10.15" in Safari,
//   Chrome and Firefox; Windows 11 sends "Windows NT 10.0" and is reported as
//   "10"; Chrome on Android sends "Android 10; K" whatever the real version.
// - Native apps that only send `CFNetwork/… Darwin/…` are reported as iOS on a
//   phone, with the iOS major version derived from Darwin's (Darwin 23 = iOS 17).
//   `okhttp` and `Dalvik` clients are reported as Android phones.
// - Smart TVs and game consoles are `.unknown` devices (no better type exists).

/// The kind of device a session was started from.
public enum DeviceType: String, Sendable, Equatable, Hashable, CaseIterable {
    /// A desktop or laptop computer.
    case desktop
    /// A phone.
    case mobile
    /// A tablet.
    case tablet
    /// A crawler, link-preview fetcher, monitoring probe or command-line/HTTP-library client.
    case bot
    /// Nothing recognisable, or a smart TV or game console.
    case unknown
}

/// What a user-agent string says about the client, for display.
public struct UserAgentInfo: Sendable, Equatable, Hashable {
    /// Desktop, phone, tablet, bot, or unknown.
    public var deviceType: DeviceType
    /// "Windows", "macOS", "iOS", "iPadOS", "Android", "Linux", "ChromeOS", "Windows Phone",
    /// "FreeBSD", "OpenBSD"; `nil` when unknown (and for bots).
    public var os: String?
    /// Major or major.minor as sent ("10", "17.4", "14", "10.15"); Windows NT versions
    /// are mapped to marketing names ("10", "8.1", "7", "Vista", "XP").
    public var osVersion: String?
    /// Browser ("Chrome", "Edge", "Firefox", "Safari", "Opera", "Samsung Internet", ...),
    /// app name ("Slack", "okhttp"), or bot name ("Googlebot", "curl").
    public var browser: String?
    /// The browser's, app's or bot's major version.
    public var browserMajorVersion: Int?

    /// Creates a value; every field defaults to unknown.
    public init(
        deviceType: DeviceType = .unknown, os: String? = nil, osVersion: String? = nil,
        browser: String? = nil, browserMajorVersion: Int? = nil
    ) {
        self.deviceType = deviceType
        self.os = os
        self.osVersion = osVersion
        self.browser = browser
        self.browserMajorVersion = browserMajorVersion
    }

    /// Nothing known.
    public static let unknown = UserAgentInfo()

    /// Only this many leading bytes of a user agent are examined. Real user agents are
    /// under ~300 bytes and put the platform and browser tokens first; the header is
    /// attacker-controlled and parsed on every login, so the cost must not grow with
    /// its length (a 100 KB header costs the same as a 512-byte one).
    public static let maxExaminedBytes = 512

    /// Parses a `User-Agent` header value. Never fails: unrecognised parts are `nil`.
    public static func parse(_ userAgent: String) -> UserAgentInfo {
        let scanner = UserAgentScanner(Array(userAgent.utf8.prefix(maxExaminedBytes)))
        return scanner.classify()
    }

    /// A short description for people: "Chrome 131 on Windows", "Safari 17 on iPhone",
    /// "Slack 23 on iPhone", "Googlebot 2 (bot)", "Unknown device".
    public var summary: String {
        let browserPart = browser.map { name in browserMajorVersion.map { "\(name) \($0)" } ?? name }
        if deviceType == .bot {
            return browserPart.map { "\($0) (bot)" } ?? "Bot"
        }
        let place: String?
        switch os {
        case "iOS": place = deviceType == .tablet ? "iPad" : "iPhone"
        case "iPadOS": place = "iPad"
        default: place = os
        }
        switch (browserPart, place) {
        case (let b?, let p?): return "\(b) on \(p)"
        case (let b?, nil): return b
        case (nil, let p?): return "Unknown browser on \(p)"
        case (nil, nil): return "Unknown device"
        }
    }
}

// MARK: - Scanner

/// The user agent split into tokens, and the rules that read them.
struct UserAgentScanner {
    /// A `Name/version` token outside comments (or inside `[...]`, where in-app
    /// browsers put theirs).
    struct Product {
        var name: Range<Int>
        var version: Range<Int>?
    }

    /// The original bytes (for display) and an ASCII-lowercased copy (for matching).
    let bytes: [UInt8]
    let lower: [UInt8]
    private(set) var products: [Product] = []
    /// Each comment's `;`-separated parts, trimmed.
    private(set) var comments: [[Range<Int>]] = []

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.lower = bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        tokenize()
    }

    // MARK: Tokenizing

    private mutating func tokenize() {
        var i = 0
        let n = bytes.count
        while i < n {
            let c = bytes[i]
            if c == 0x28 || c == 0x5B {  // ( or [
                let open = c
                let close: UInt8 = c == 0x28 ? 0x29 : 0x5D
                var depth = 1
                var partStart = i + 1
                var parts: [Range<Int>] = []
                i += 1
                while i < n, depth > 0 {
                    let d = bytes[i]
                    if d == open {
                        depth += 1
                    } else if d == close {
                        depth -= 1
                        if depth == 0 { parts.append(trimmed(partStart..<i)) }
                    } else if d == 0x3B, depth == 1 {  // ;
                        parts.append(trimmed(partStart..<i))
                        partStart = i + 1
                    }
                    i += 1
                }
                if depth > 0 { parts.append(trimmed(partStart..<n)) }  // unterminated
                parts.removeAll { $0.isEmpty }
                if open == 0x5B {
                    // [FBAN/FBIOS;FBAV/450.0.0.38.108;...]: in-app browser products.
                    for part in parts { addProduct(part) }
                } else {
                    comments.append(parts)
                }
                continue
            }
            if Self.isSeparator(c) {
                i += 1
                continue
            }
            let start = i
            while i < n, !Self.isSeparator(bytes[i]), bytes[i] != 0x28, bytes[i] != 0x5B { i += 1 }
            addProduct(start..<i)
        }
    }

    private mutating func addProduct(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        var name = range
        var version: Range<Int>?
        if let slash = bytes[range].firstIndex(of: 0x2F) {
            name = range.lowerBound..<slash
            version = (slash + 1)..<range.upperBound
        }
        guard !name.isEmpty else { return }
        products.append(Product(name: name, version: version))
    }

    private static func isSeparator(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x09 || c == 0x2C || c == 0x0A || c == 0x0D  // space tab , \n \r
    }

    private func trimmed(_ range: Range<Int>) -> Range<Int> {
        var lo = range.lowerBound
        var hi = range.upperBound
        while lo < hi, Self.isSeparator(bytes[lo]) { lo += 1 }
        while hi > lo, Self.isSeparator(bytes[hi - 1]) { hi -= 1 }
        return lo..<hi
    }

    // MARK: Classification

    func classify() -> UserAgentInfo {
        guard !products.isEmpty || !comments.isEmpty else { return .unknown }
        if let bot = detectBot() {
            return UserAgentInfo(deviceType: .bot, browser: bot.name, browserMajorVersion: bot.major)
        }
        let platform = detectPlatform()
        let browser = detectBrowser()
        return UserAgentInfo(
            deviceType: platform.deviceType(isBrowser: product("mozilla") != nil || product("opera") != nil),
            os: platform.os, osVersion: platform.osVersion,
            browser: browser?.name, browserMajorVersion: browser?.major)
    }

    // MARK: Bots

    /// Distinctive names searched anywhere in the user agent (lowercased needle, display name).
    private static let knownBots: [(needle: [UInt8], name: String)] = [
        ("googlebot", "Googlebot"), ("adsbot-google", "AdsBot-Google"),
        ("mediapartners-google", "Mediapartners-Google"), ("google-inspectiontool", "Google-InspectionTool"),
        ("googleother", "GoogleOther"), ("storebot-google", "Storebot-Google"),
        ("bingbot", "Bingbot"), ("bingpreview", "BingPreview"), ("adidxbot", "AdIdxBot"),
        ("duckduckbot", "DuckDuckBot"), ("yandexbot", "YandexBot"), ("yandex.com/bots", "YandexBot"),
        ("baiduspider", "Baiduspider"), ("facebookexternalhit", "facebookexternalhit"),
        ("facebookcatalog", "facebookcatalog"), ("meta-externalagent", "meta-externalagent"),
        ("twitterbot", "Twitterbot"), ("slackbot", "Slackbot"), ("slack-imgproxy", "Slackbot"),
        ("linkedinbot", "LinkedInBot"), ("discordbot", "Discordbot"), ("telegrambot", "TelegramBot"),
        ("pinterestbot", "Pinterestbot"), ("redditbot", "redditbot"), ("applebot", "Applebot"),
        ("petalbot", "PetalBot"), ("semrushbot", "SemrushBot"), ("ahrefsbot", "AhrefsBot"),
        ("mj12bot", "MJ12bot"), ("dotbot", "DotBot"), ("gptbot", "GPTBot"), ("chatgpt-user", "ChatGPT-User"),
        ("claudebot", "ClaudeBot"), ("ccbot", "CCBot"), ("bytespider", "Bytespider"),
        ("amazonbot", "Amazonbot"), ("yahoo! slurp", "Yahoo! Slurp"), ("uptimerobot", "UptimeRobot"),
        ("pingdom", "Pingdom"), ("chrome-lighthouse", "Lighthouse"), ("headlesschrome", "HeadlessChrome"),
        ("phantomjs", "PhantomJS"), ("skypeuripreview", "SkypeUriPreview"), ("embedly", "Embedly"),
    ].map { (Array($0.0.utf8), $0.1) }

    /// Indices into `knownBots` by the needle's first byte, so one pass over the
    /// user agent checks every needle.
    private static let knownBotsByFirstByte: [[Int]] = {
        var table = [[Int]](repeating: [], count: 256)
        for (index, bot) in knownBots.enumerated() {
            if let first = bot.needle.first { table[Int(first)].append(index) }
        }
        return table
    }()

    /// HTTP libraries and command-line tools, matched on a product name exactly; the
    /// first in this list that is present wins (so `aiohttp` beats `Python`).
    private static let clients: [(key: StaticString, name: String)] = [
        ("curl", "curl"), ("wget", "Wget"), ("python-requests", "python-requests"),
        ("python-httpx", "python-httpx"), ("aiohttp", "aiohttp"), ("python-urllib", "Python-urllib"),
        ("go-http-client", "Go-http-client"), ("apache-httpclient", "Apache-HttpClient"),
        ("java", "Java"), ("libwww-perl", "libwww-perl"), ("node-fetch", "node-fetch"), ("undici", "undici"),
        ("axios", "axios"), ("postmanruntime", "PostmanRuntime"), ("insomnia", "Insomnia"),
        ("httpie", "HTTPie"), ("guzzlehttp", "GuzzleHttp"), ("faraday", "Faraday"), ("ruby", "Ruby"),
        ("php", "PHP"), ("scrapy", "Scrapy"), ("python", "Python"), ("reqwest", "reqwest"),
        ("rest-client", "rest-client"),
    ]

    /// Words that mark an automated client when they appear in a product name or a
    /// non-platform comment ("SomeCrawler/1.0", "(compatible; FooBot/2; +http://…)").
    private static let botWords: [[UInt8]] = ["bot", "crawl", "spider", "scraper", "headless", "slurp"].map { Array($0.utf8) }

    private func detectBot() -> (name: String, major: Int?)? {
        for i in lower.indices {
            for index in Self.knownBotsByFirstByte[Int(lower[i])] {
                let (needle, name) = Self.knownBots[index]
                if lower[i...].starts(with: needle) { return (name, versionAfterWord(at: i)) }
            }
        }
        for (key, name) in Self.clients {
            if let index = product(key) { return (name, majorVersion(ofProduct: index)) }
        }
        for product in products {
            if Self.botWords.contains(where: { find(bytes: $0, in: product.name) != nil }) {
                return (displayString(product.name), product.version.flatMap(major))
            }
        }
        for parts in comments where !isPlatformComment(parts) {
            for part in parts where Self.botWords.contains(where: { find(bytes: $0, in: part) != nil }) {
                let (name, version) = splitNameVersion(part)
                return (displayString(name), version.flatMap(major))
            }
        }
        // Browsers never send a URL; crawlers put their contact page in a comment.
        for parts in comments {
            guard parts.contains(where: { isURL($0) }) else { continue }
            let named = parts.first { part in
                !isURL(part) && !hasPrefix(part, "compatible") && !hasPrefix(part, "mozilla")
            }
            if let part = named {
                let (name, version) = splitNameVersion(part)
                return (displayString(name), version.flatMap(major))
            }
            if let first = products.first(where: { !equals($0.name, "mozilla") }) {
                return (displayString(first.name), first.version.flatMap(major))
            }
            return ("Bot", nil)
        }
        return nil
    }

    private func isURL(_ part: Range<Int>) -> Bool {
        find("http://", in: part) != nil || find("https://", in: part) != nil
    }

    /// A comment describing the device, where a model name ("CUBOT X30") must not
    /// be mistaken for a bot.
    private func isPlatformComment(_ parts: [Range<Int>]) -> Bool {
        parts.contains { part in
            hasPrefix(part, "linux") || hasPrefix(part, "android") || hasPrefix(part, "iphone")
                || hasPrefix(part, "ipad") || hasPrefix(part, "ipod") || hasPrefix(part, "windows")
                || hasPrefix(part, "macintosh") || hasPrefix(part, "x11") || hasPrefix(part, "cpu ")
                || hasPrefix(part, "cros")
        }
    }

    /// After a bot's name: `Googlebot/2.1` or `Googlebot-Image/1.0` or `Slackbot 1.0`.
    private func versionAfterWord(at start: Int) -> Int? {
        var i = start
        while i < lower.count, !Self.isSeparator(lower[i]), lower[i] != 0x2F, lower[i] != 0x3B, lower[i] != 0x29 { i += 1 }
        guard i < lower.count else { return nil }
        if lower[i] == 0x2F { return major(i + 1..<lower.count) }
        if lower[i] == 0x20, i + 1 < lower.count, Self.isDigit(lower[i + 1]) { return major(i + 1..<lower.count) }
        return nil
    }

    // MARK: Platform

    struct Platform {
        var os: String?
        var osVersion: String?
        var isPhone = false
        var isTablet = false
        var saysMobile = false
        /// Smart TVs and game consoles: none of the device types fits.
        var isTVOrConsole = false

        func deviceType(isBrowser: Bool) -> DeviceType {
            if isTVOrConsole { return .unknown }
            if isTablet { return .tablet }
            if isPhone { return .mobile }
            switch os {
            case "iPadOS": return .tablet
            case "iOS", "Windows Phone": return .mobile
            case "Android":
                // Android browsers say "Mobile" on phones only; apps (okhttp, Dalvik) never do.
                return saysMobile || !isBrowser ? .mobile : .tablet
            case "Windows", "macOS", "Linux", "ChromeOS", "FreeBSD", "OpenBSD":
                return saysMobile ? .mobile : .desktop
            default:
                return saysMobile ? .mobile : .unknown
            }
        }
    }

    private func detectPlatform() -> Platform {
        var p = Platform()
        var android: (found: Bool, version: String?) = (false, nil)
        var ios: (found: Bool, version: String?) = (false, nil)
        var iPad = false
        var windows: (found: Bool, version: String?) = (false, nil)
        var windowsPhone: (found: Bool, version: String?) = (false, nil)
        var mac: (found: Bool, version: String?) = (false, nil)
        var chromeOS = false
        var linux = false
        var bsd: String?

        for parts in comments {
            for part in parts {
                if hasPrefix(part, "android") {
                    android.found = true
                    android.version = android.version ?? osVersion(in: part, after: "android")
                } else if hasPrefix(part, "iphone") || hasPrefix(part, "ipod") {
                    p.isPhone = true
                    ios.found = true
                } else if hasPrefix(part, "ipad") && !hasPrefix(part, "ipados") {
                    iPad = true
                    ios.found = true
                } else if let at = find("iphone os ", in: part) {
                    ios.found = true
                    ios.version = ios.version ?? versionString(from: at + 10, in: part)
                } else if hasPrefix(part, "cpu os ") {
                    ios.found = true
                    ios.version = ios.version ?? versionString(from: part.lowerBound + 7, in: part)
                } else if hasPrefix(part, "ios ") || hasPrefix(part, "ipados ") {
                    ios.found = true
                    if hasPrefix(part, "ipados ") { iPad = true }
                    let skip = hasPrefix(part, "ios ") ? 4 : 7
                    ios.version = ios.version ?? versionString(from: part.lowerBound + skip, in: part)
                } else if hasPrefix(part, "windows phone") {
                    windowsPhone.found = true
                    windowsPhone.version = osVersion(in: part, after: "windows phone")
                } else if hasPrefix(part, "windows nt") {
                    windows.found = true
                    windows.version = windowsVersion(osVersion(in: part, after: "windows nt"))
                } else if hasPrefix(part, "windows") || hasPrefix(part, "win64") || hasPrefix(part, "wow64") {
                    windows.found = true
                } else if let at = find("mac os x", in: part) {
                    if at >= part.lowerBound + 5, find("like ", in: (at - 5)..<at) != nil {
                        continue  // "like Mac OS X" in an iOS user agent
                    }
                    mac.found = true
                    var from = at + 8
                    while from < part.upperBound, lower[from] == 0x20 { from += 1 }
                    mac.version = mac.version ?? versionString(from: from, in: part)
                } else if hasPrefix(part, "macintosh") {
                    mac.found = true
                } else if hasPrefix(part, "macos") {
                    mac.found = true
                    var from = part.lowerBound + 5
                    while from < part.upperBound, !Self.isDigit(lower[from]) { from += 1 }
                    mac.version = mac.version ?? versionString(from: from, in: part)
                } else if hasPrefix(part, "cros") {
                    chromeOS = true
                } else if hasPrefix(part, "linux") || hasPrefix(part, "x11") || hasPrefix(part, "ubuntu")
                    || hasPrefix(part, "fedora")
                {
                    linux = true
                } else if hasPrefix(part, "freebsd") {
                    bsd = "FreeBSD"
                } else if hasPrefix(part, "openbsd") {
                    bsd = "OpenBSD"
                } else if equals(part, "mobile") {
                    p.saysMobile = true
                } else if equals(part, "tablet") {
                    p.isTablet = true
                } else if hasPrefix(part, "smart-tv") || hasPrefix(part, "smarttv") || hasPrefix(part, "xbox")
                    || hasPrefix(part, "playstation") || hasPrefix(part, "nintendo") || hasPrefix(part, "web0s")
                {
                    p.isTVOrConsole = true
                }
            }
        }

        // Instagram: "Instagram 312.0.0.32.112 Android (33/13; ...)" — API level/release.
        if product("android") != nil {
            android.found = true
            if android.version == nil, let first = comments.first(where: { !$0.isEmpty })?.first,
               let slash = bytes[first].firstIndex(of: 0x2F), first.lowerBound < slash,
               bytes[first.lowerBound..<slash].allSatisfy(Self.isDigit)
            {
                android.version = versionString(from: slash + 1, in: first)
            }
        }

        var darwinMajor: Int?
        for product in products {
            if equals(product.name, "mobile") {
                p.saysMobile = true
            } else if equals(product.name, "darwin") {
                darwinMajor = product.version.flatMap(major)
            } else if equals(product.name, "okhttp") || equals(product.name, "dalvik") {
                android.found = true
            }
        }

        if windowsPhone.found {
            // Windows Phone also claims "Android" for compatibility.
            p.os = "Windows Phone"
            p.osVersion = windowsPhone.version
        } else if android.found {
            p.os = "Android"
            p.osVersion = android.version
        } else if ios.found {
            // iPads ran "iOS" until 13, "iPadOS" since.
            let majorVersion = ios.version.flatMap { major(Array($0.utf8)[...]) }
            p.os = iPad && (majorVersion ?? 13) >= 13 ? "iPadOS" : "iOS"
            p.osVersion = ios.version
            if iPad { p.isTablet = true }
        } else if chromeOS {
            p.os = "ChromeOS"
        } else if windows.found {
            p.os = "Windows"
            p.osVersion = windows.version
        } else if mac.found {
            p.os = "macOS"
            p.osVersion = mac.version
        } else if let darwin = darwinMajor {
            // A native app's CFNetwork user agent. Macs add "(x86_64)"/"(arm64)" or
            // "Macintosh"; without those it is an iPhone app.
            let isMac = comments.contains { parts in
                parts.contains { equals($0, "x86_64") || equals($0, "arm64") || hasPrefix($0, "macintosh") }
            }
            if isMac {
                p.os = "macOS"
                p.osVersion = darwin >= 20 ? String(darwin - 9) : nil
            } else {
                p.os = "iOS"
                p.osVersion = darwin >= 10 ? String(darwin - 6) : nil
                p.isPhone = true
            }
        } else if let bsd {
            p.os = bsd
        } else if linux {
            p.os = "Linux"
        }
        return p
    }

    private func windowsVersion(_ nt: String?) -> String? {
        switch nt {
        case "10.0": return "10"
        case "6.3": return "8.1"
        case "6.2": return "8"
        case "6.1": return "7"
        case "6.0": return "Vista"
        case "5.1", "5.2": return "XP"
        default: return nt
        }
    }

    /// The version following `word` in a part ("Android 8.1.0" -> "8.1").
    private func osVersion(in part: Range<Int>, after word: String) -> String? {
        var i = part.lowerBound + word.utf8.count
        while i < part.upperBound, lower[i] == 0x20 { i += 1 }
        return versionString(from: i, in: part)
    }

    /// "17_4_1" or "17.4.1" from `start` -> "17.4"; "14" -> "14"; no digits -> nil.
    private func versionString(from start: Int, in part: Range<Int>) -> String? {
        var i = start
        var out = ""
        var components = 0
        while components < 2 {
            let digitsStart = i
            while i < part.upperBound, i - digitsStart < 6, Self.isDigit(lower[i]) { i += 1 }
            guard i > digitsStart else { break }
            if components > 0 { out += "." }
            out += String(decoding: lower[digitsStart..<i], as: UTF8.self)
            components += 1
            guard i + 1 < part.upperBound, lower[i] == 0x2E || lower[i] == 0x5F, Self.isDigit(lower[i + 1]) else { break }
            i += 1
        }
        return components > 0 ? out : nil
    }

    // MARK: Browsers

    /// Browsers identified by a token of their own, in priority order: the ones built on
    /// Chromium or WebKit also send "Chrome" and "Safari", so they must come first.
    private static let browserTokens: [(keys: [StaticString], name: String)] = [
        (["fbav", "fb_iab", "fban"], "Facebook"),
        (["instagram"], "Instagram"),
        (["edg", "edga", "edgios", "edge"], "Edge"),
        (["opr", "opt", "opios"], "Opera"),
        (["samsungbrowser"], "Samsung Internet"),
        (["yabrowser"], "Yandex Browser"),
        (["vivaldi"], "Vivaldi"),
        (["ucbrowser"], "UC Browser"),
        (["duckduckgo"], "DuckDuckGo"),
        (["silk"], "Silk"),
        (["gsa"], "Google App"),
        (["crios"], "Chrome"),
        (["fxios"], "Firefox"),
        (["firefox"], "Firefox"),
    ]

    /// Tokens that never name an app.
    private static let genericProducts: [StaticString] = [
        "mozilla", "dalvik", "cfnetwork", "darwin", "applewebkit", "khtml", "gecko", "like", "mobile",
        "version", "safari", "chrome", "electron", "linux", "android", "u",
    ]

    private func detectBrowser() -> (name: String, major: Int?)? {
        for (keys, name) in Self.browserTokens {
            for key in keys {
                if let index = product(key) { return (name, majorVersion(ofProduct: index)) }
            }
        }
        if let opera = product("opera") {
            // Presto-era Opera: "Opera/9.80 (...) Presto/2.12 Version/12.16".
            return ("Opera", product("version").flatMap(majorVersion(ofProduct:)) ?? majorVersion(ofProduct: opera))
        }
        if let electron = product("electron") {
            // Desktop apps built on Electron name themselves before "Chrome/".
            if let app = products.first(where: { !isGeneric($0.name) && $0.version != nil }) {
                return (displayString(app.name), app.version.flatMap(major))
            }
            return ("Electron", majorVersion(ofProduct: electron))
        }
        if let chrome = product("chrome") {
            let isWebView = comments.contains { parts in parts.contains { equals($0, "wv") } }
            return (isWebView ? "Android WebView" : "Chrome", majorVersion(ofProduct: chrome))
        }
        if let chromium = product("chromium") { return ("Chromium", majorVersion(ofProduct: chromium)) }
        if product("safari") != nil {
            return ("Safari", product("version").flatMap(majorVersion(ofProduct:)))
        }
        if let ie = internetExplorerVersion() { return ("Internet Explorer", ie) }
        if product("mozilla") != nil || product("dalvik") != nil {
            return nil  // a web view or an unnamed app
        }
        // A native app: its own product comes first ("Slack/23.10 CFNetwork/...",
        // "MyApp/1.2 (iPhone; iOS 17.4)", "okhttp/4.12.0").
        if let app = products.first(where: { !isGeneric($0.name) }) {
            return (displayString(app.name), app.version.flatMap(major))
        }
        return nil
    }

    /// `nil` when this is not Internet Explorer; `.some(nil)` when it is, version unknown.
    private func internetExplorerVersion() -> Int?? {
        for parts in comments {
            for part in parts where hasPrefix(part, "msie ") {
                return .some(major(part.lowerBound + 5..<part.upperBound))
            }
        }
        for parts in comments where parts.contains(where: { hasPrefix($0, "trident/") }) {
            for part in parts where hasPrefix(part, "rv:") {
                return .some(major(part.lowerBound + 3..<part.upperBound))
            }
            return .some(nil)
        }
        return nil
    }

    // MARK: Versions

    /// A product's major version, or, for `Name 1.2` (no slash), the next token's.
    private func majorVersion(ofProduct index: Int) -> Int? {
        if let version = products[index].version { return major(version) }
        let next = index + 1
        guard next < products.count, products[next].version == nil else { return nil }
        return major(products[next].name)
    }

    private func major(_ range: Range<Int>) -> Int? {
        major(lower[range])
    }

    /// Leading decimal digits (at most 6, so nothing can overflow).
    private func major(_ slice: ArraySlice<UInt8>) -> Int? {
        var value = 0
        var count = 0
        for b in slice {
            guard Self.isDigit(b) else { break }
            count += 1
            if count > 6 { return nil }
            value = value * 10 + Int(b - 0x30)
        }
        return count > 0 ? value : nil
    }

    private func splitNameVersion(_ part: Range<Int>) -> (Range<Int>, Range<Int>?) {
        if let slash = bytes[part].firstIndex(of: 0x2F) {
            return (part.lowerBound..<slash, (slash + 1)..<part.upperBound)
        }
        return (part, nil)
    }

    // MARK: Bytes

    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// The index of the first product with this (lowercase) name.
    private func product(_ name: StaticString) -> Int? {
        products.firstIndex { equals($0.name, name) }
    }

    private func isGeneric(_ name: Range<Int>) -> Bool {
        Self.genericProducts.contains { equals(name, $0) }
    }

    /// Original spelling, with `%20`-style escapes (CFNetwork encodes app names) decoded
    /// when they are printable ASCII.
    private func displayString(_ range: Range<Int>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var i = range.lowerBound
        while i < range.upperBound {
            if bytes[i] == 0x25, i + 2 < range.upperBound,
               let hi = Self.hexValue(bytes[i + 1]), let lo = Self.hexValue(bytes[i + 2])
            {
                let decoded = hi << 4 | lo
                if decoded >= 0x20, decoded < 0x7F {
                    out.append(decoded)
                    i += 3
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    private func hasPrefix(_ range: Range<Int>, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard range.count >= count else { return false }
        return prefix.withUTF8Buffer { lower[range.lowerBound..<(range.lowerBound + count)].elementsEqual($0) }
    }

    private func equals(_ range: Range<Int>, _ word: StaticString) -> Bool {
        range.count == word.utf8CodeUnitCount && hasPrefix(range, word)
    }

    /// First index of `needle` (lowercase) within `range` of the lowercased bytes.
    private func find(_ needle: StaticString, in range: Range<Int>) -> Int? {
        needle.withUTF8Buffer { find(bytes: $0, in: range) }
    }

    private func find(bytes needle: some Collection<UInt8>, in range: Range<Int>) -> Int? {
        guard let first = needle.first, needle.count <= range.count else { return nil }
        var i = range.lowerBound
        let last = range.upperBound - needle.count
        while i <= last {
            if lower[i] == first, lower[i...].starts(with: needle) { return i }
            i += 1
        }
        return nil
    }
}
