import Testing

@testable import MoatServer

/// One real user agent and what the sessions page should show for it.
struct UserAgentCase: CustomTestStringConvertible, Sendable {
    var userAgent: String
    var device: DeviceType
    var os: String?
    var osVersion: String?
    var browser: String?
    var major: Int?

    init(
        _ userAgent: String, _ device: DeviceType, _ os: String?, _ osVersion: String?,
        _ browser: String?, _ major: Int?
    ) {
        self.userAgent = userAgent
        self.device = device
        self.os = os
        self.osVersion = osVersion
        self.browser = browser
        self.major = major
    }

    var testDescription: String { String(userAgent.prefix(90)) }

    var expected: UserAgentInfo {
        UserAgentInfo(deviceType: device, os: os, osVersion: osVersion, browser: browser, browserMajorVersion: major)
    }
}

// swift-format-ignore
let realUserAgents: [UserAgentCase] = [
    // MARK: Desktop browsers
    .init("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
          .desktop, "Windows", "10", "Chrome", 131),
    .init("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
          .desktop, "macOS", "10.15", "Chrome", 131),
    .init("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
          .desktop, "Linux", nil, "Chrome", 130),
    .init("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
          .desktop, "ChromeOS", nil, "Chrome", 131),
    .init("Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
          .desktop, "Windows", "7", "Chrome", 109),
    .init("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
          .desktop, "Windows", "10", "Edge", 131),
    .init("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.80",
          .desktop, "macOS", "10.15", "Edge", 130),
    .init("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045",
          .desktop, "Windows", "10", "Edge", 18),
    .init("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
          .desktop, "Windows", "10", "Firefox", 133),
    .init("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0",
          .desktop, "macOS", "10.15", "Firefox", 132),
    .init("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
          .desktop, "Linux", nil, "Firefox", 133),
    .init("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
          .desktop, "macOS", "10.15", "Safari", 18),
    .init("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 OPR/115.0.0.0",
          .desktop, "Windows", "10", "Opera", 115),
    .init("Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
          .desktop, "Windows", "7", "Opera", 12),
    .init("Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
          .desktop, "Windows", "10", "Internet Explorer", 11),
    .init("Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; Trident/6.0)",
          .desktop, "Windows", "8", "Internet Explorer", 10),
    .init("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 YaBrowser/24.6.0.0 Safari/537.36",
          .desktop, "Windows", "10", "Yandex Browser", 24),
    .init("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Vivaldi/6.5.3206.53",
          .desktop, "Linux", nil, "Vivaldi", 6),
    // iPadOS Safari in its default "desktop website" mode is indistinguishable from a Mac.
    .init("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
          .desktop, "macOS", "10.15", "Safari", 17),
    // Electron desktop apps name themselves before Chrome/.
    .init("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.137 Electron/33.2.0 Safari/537.36 Sonic Slack_SSB/4.41.105",
          .desktop, "macOS", "10.15", "Slack", 4),
    .init("Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) discord/1.0.9031 Chrome/120.0.6099.291 Electron/28.2.10 Safari/537.36",
          .desktop, "Windows", "10", "discord", 1),

    // MARK: Phones
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
          .mobile, "iOS", "17.4", "Safari", 17),
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.1 Mobile/15E148 Safari/604.1",
          .mobile, "iOS", "18.1", "Safari", 18),
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
          .mobile, "iOS", "17.6", "Chrome", 131),
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/132.2 Mobile/15E148 Safari/605.1.15",
          .mobile, "iOS", "17.6", "Firefox", 132),
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15",
          .mobile, "iOS", "17.5", "Edge", 131),
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1 OPT/5.0.5",
          .mobile, "iOS", "17.5", "Opera", 5),
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/307.0.614399002 Mobile/15E148 Safari/604.1",
          .mobile, "iOS", "17.4", "Google App", 307),
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 DuckDuckGo/7 Safari/605.1.15",
          .mobile, "iOS", "17.4", "DuckDuckGo", 7),
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/450.0.0.38.108;FBBV/564431005;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/567226672]",
          .mobile, "iOS", "17.4", "Facebook", 450),
    // An in-app WKWebView without a browser token.
    .init("Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_10 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
          .mobile, "iOS", "16.7", nil, nil),
    .init("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
          .mobile, "Android", "10", "Chrome", 131),
    .init("Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Mobile Safari/537.36",
          .mobile, "Android", "13", "Chrome", 112),
    .init("Mozilla/5.0 (Linux; Android 11; CUBOT X50) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.230 Mobile Safari/537.36",
          .mobile, "Android", "11", "Chrome", 120),
    .init("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
          .mobile, "Android", "10", "Edge", 131),
    .init("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
          .mobile, "Android", "14", "Firefox", 133),
    .init("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
          .mobile, "Android", "14", "Samsung Internet", 26),
    .init("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36 OPR/85.0.0.0",
          .mobile, "Android", "10", "Opera", 85),
    .init("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/128.0.6613.127 Mobile Safari/537.36",
          .mobile, "Android", "14", "Android WebView", 128),
    .init("Mozilla/5.0 (Linux; Android 13; SM-S908B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 Instagram 309.1.0.41.113 Android (33/13; 480dpi; 1080x2088; samsung; SM-S908B; b0q; qcom; en_GB; 541635890)",
          .mobile, "Android", "13", "Instagram", 309),
    .init("Mozilla/5.0 (Linux; Android 8.1.0; Nokia 2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/100.0.4896.127 Mobile Safari/537.36",
          .mobile, "Android", "8.1", "Chrome", 100),
    .init("Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.15063",
          .mobile, "Windows Phone", "10.0", "Edge", 15),

    // MARK: Tablets
    .init("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
          .tablet, "iPadOS", "17.4", "Safari", 17),
    .init("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/123.0.6312.52 Mobile/15E148 Safari/604.1",
          .tablet, "iPadOS", "17.4", "Chrome", 123),
    .init("Mozilla/5.0 (iPad; CPU OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1",
          .tablet, "iOS", "12.5", "Safari", 12),
    .init("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
          .tablet, "Android", "14", "Chrome", 131),
    .init("Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Safari/537.36",
          .tablet, "Android", "13", "Samsung Internet", 25),
    .init("Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0",
          .tablet, "Android", "14", "Firefox", 133),
    .init("Mozilla/5.0 (Linux; Android 9; KFMAWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/130.3.1 like Chrome/130.0.6723.102 Safari/537.36",
          .tablet, "Android", "9", "Silk", 130),

    // MARK: TVs and consoles
    .init("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 85.0.4183.93/6.0 TV Safari/537.36",
          .unknown, "Linux", nil, "Safari", nil),
    .init("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 Safari/537.36 Edge/44.18363.8131",
          .unknown, "Windows", "10", "Edge", 44),
    .init("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
          .unknown, nil, nil, "Safari", 13),

    // MARK: Native apps
    .init("Slack/23.10.10 CFNetwork/1410.0.3 Darwin/22.6.0",
          .mobile, "iOS", "16", "Slack", 23),
    .init("Microsoft%20Outlook/4.2424.0 CFNetwork/1496.0.7 Darwin/23.5.0",
          .mobile, "iOS", "17", "Microsoft Outlook", 4),
    .init("MyApp/1.2 (iPhone; iOS 17.4; Scale/3.00)",
          .mobile, "iOS", "17.4", "MyApp", 1),
    .init("MyApp/1.2 (iPad; iOS 17.4; Scale/2.00)",
          .tablet, "iPadOS", "17.4", "MyApp", 1),
    .init("Acme/3.4.1 (com.acme.ios; build:512; iOS 17.5.1) Alamofire/5.9.1",
          .mobile, "iOS", "17.5", "Acme", 3),
    .init("okhttp/4.12.0",
          .mobile, "Android", nil, "okhttp", 4),
    .init("Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)",
          .mobile, "Android", "14", nil, nil),

    // MARK: Bots and tools
    .init("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
          .bot, nil, nil, "Googlebot", 2),
    .init("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/131.0.6778.69 Safari/537.36",
          .bot, nil, nil, "Googlebot", 2),
    .init("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
          .bot, nil, nil, "Googlebot", 2),
    .init("Googlebot-Image/1.0",
          .bot, nil, nil, "Googlebot", 1),
    .init("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
          .bot, nil, nil, "Bingbot", 2),
    .init("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
          .bot, nil, nil, "DuckDuckBot", 1),
    .init("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
          .bot, nil, nil, "YandexBot", 3),
    .init("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
          .bot, nil, nil, "Baiduspider", 2),
    .init("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
          .bot, nil, nil, "facebookexternalhit", 1),
    .init("Twitterbot/1.0",
          .bot, nil, nil, "Twitterbot", 1),
    .init("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
          .bot, nil, nil, "Slackbot", 1),
    .init("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
          .bot, nil, nil, "Applebot", 0),
    .init("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2; +https://openai.com/gptbot",
          .bot, nil, nil, "GPTBot", 1),
    .init("Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda/vyhledavani/en/seznambot-crawler/)",
          .bot, nil, nil, "SeznamBot", 4),
    .init("Mozilla/5.0 (compatible; Qwantify/2.4w; +https://www.qwant.com/)/2.4w",
          .bot, nil, nil, "Qwantify", 2),
    .init("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
          .bot, nil, nil, "HeadlessChrome", 131),
    .init("curl/8.5.0",
          .bot, nil, nil, "curl", 8),
    .init("Wget/1.21.4",
          .bot, nil, nil, "Wget", 1),
    .init("python-requests/2.32.3",
          .bot, nil, nil, "python-requests", 2),
    .init("Python/3.12 aiohttp/3.10.10",
          .bot, nil, nil, "aiohttp", 3),
    .init("Go-http-client/2.0",
          .bot, nil, nil, "Go-http-client", 2),
    .init("Java/17.0.9",
          .bot, nil, nil, "Java", 17),
    .init("PostmanRuntime/7.42.0",
          .bot, nil, nil, "PostmanRuntime", 7),
]

@Suite("User agent parsing")
struct UserAgentTests {
    @Test func theTableIsLargeEnough() {
        #expect(realUserAgents.count >= 40)
    }

    @Test(arguments: realUserAgents)
    func realUserAgent(_ testCase: UserAgentCase) {
        let info = UserAgentInfo.parse(testCase.userAgent)
        #expect(info.deviceType == testCase.device)
        #expect(info.os == testCase.os)
        #expect(info.osVersion == testCase.osVersion)
        #expect(info.browser == testCase.browser)
        #expect(info.browserMajorVersion == testCase.major)
        #expect(info == testCase.expected)
    }

    @Test func summaries() {
        func summary(_ ua: String) -> String { UserAgentInfo.parse(ua).summary }
        #expect(summary("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36") == "Chrome 131 on Windows")
        #expect(summary("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1") == "Safari 17 on iPhone")
        #expect(summary("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1") == "Safari 17 on iPad")
        #expect(summary("Mozilla/5.0 (iPad; CPU OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1") == "Safari 12 on iPad")
        #expect(summary("Slack/23.10.10 CFNetwork/1410.0.3 Darwin/22.6.0") == "Slack 23 on iPhone")
        #expect(summary("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0") == "Firefox 133 on Android")
        #expect(summary("Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)") == "Unknown browser on Android")
        #expect(summary("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)") == "Googlebot 2 (bot)")
        #expect(summary("curl/8.5.0") == "curl 8 (bot)")
        #expect(summary("") == "Unknown device")
        #expect(summary("SomeClient") == "SomeClient")
        #expect(UserAgentInfo(deviceType: .bot).summary == "Bot")
        #expect(UserAgentInfo(browser: "Firefox").summary == "Firefox")
    }

    @Test func emptyAndBlankAreUnknown() {
        #expect(UserAgentInfo.parse("") == .unknown)
        #expect(UserAgentInfo.parse("   \t ") == .unknown)
        #expect(UserAgentInfo.parse("()") == .unknown)
        #expect(UserAgentInfo.parse("Mozilla/5.0") == UserAgentInfo())
        #expect(UserAgentInfo.unknown.deviceType == .unknown)
    }

    @Test func caseInsensitiveTokens() {
        let info = UserAgentInfo.parse("mozilla/5.0 (WINDOWS NT 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) CHROME/131.0.0.0 safari/537.36")
        #expect(info == UserAgentInfo(deviceType: .desktop, os: "Windows", osVersion: "10", browser: "Chrome", browserMajorVersion: 131))
    }

    @Test func nativeMacAppsAreRecognisedByArchitecture() {
        let info = UserAgentInfo.parse("Spotify/1.2.31 CFNetwork/1494.0.7 Darwin/23.4.0 (x86_64)")
        #expect(info == UserAgentInfo(deviceType: .desktop, os: "macOS", osVersion: "14", browser: "Spotify", browserMajorVersion: 1))
    }

    @Test func malformedInputNeverCrashes() {
        let inputs = [
            "(", ")", "((((((((((", "))))", "[", "[;;;]", "/", "//////", "a/", "/1", ";", "(;;;;)",
            "Mozilla/5.0 (iPhone; CPU iPhone OS ", "Mozilla/5.0 (Linux; Android", "Windows NT",
            "Chrome/", "Chrome/abc", "Chrome/99999999999999999999999", "Version/", "Safari/ Version/",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X ", "Mozilla/5.0 (iPad; CPU OS _ like Mac OS X)",
            "CFNetwork/1 Darwin/", "Darwin/9999999999999", "Darwin/3", "%", "%2", "%ZZ/1", "%00App/1",
            "Instagram", "Android (", "Android (33/", "(compatible; +http://)", "\u{0}\u{1}\u{7F}",
            "😀/1.0 (😀; 😀)", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)\u{301}", String(repeating: "(", count: 600),
            "MSIE", "(MSIE ", "(Trident/7.0)", "(rv:)", "Edg", "OPR", "Opera", "(wv) Chrome/1",
        ]
        for input in inputs {
            let info = UserAgentInfo.parse(input)
            _ = info.summary
        }
        #expect(UserAgentInfo.parse("Chrome/99999999999999999999999").browserMajorVersion == nil)
        #expect(UserAgentInfo.parse("Darwin/3").osVersion == nil)
        #expect(UserAgentInfo.parse("%ZZ/1").browser == "%ZZ")
        #expect(UserAgentInfo.parse("%00App/1").browser == "%00App")
        #expect(UserAgentInfo.parse("My%20App/2 (iPhone; iOS 18.0)").browser == "My App")
    }

    @Test func arbitraryBytesNeverCrash() {
        var state: UInt64 = 0xC0FFEE
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let alphabet = Array("Mozilla/5.0 (iPhone; CPU OS 17_4 like Mac OS X) Android Chrome/Safari Version/ Edg OPR [FBAV/1;] %20 bot http://".utf8)
            + [0, 0xFF, 0xC3, 0xA9, 0xF0, 0x9F]
        for _ in 0..<2_000 {
            let length = Int(next() % 200)
            var bytes: [UInt8] = []
            for _ in 0..<length { bytes.append(alphabet[Int(next() % UInt64(alphabet.count))]) }
            _ = UserAgentInfo.parse(String(decoding: bytes, as: UTF8.self)).summary
        }
        for testCase in realUserAgents {
            let bytes = Array(testCase.userAgent.utf8)
            for end in stride(from: 0, through: bytes.count, by: 3) {
                _ = UserAgentInfo.parse(String(decoding: bytes[0..<end], as: UTF8.self))
            }
        }
    }

    @Test func hugeInputIsCapped() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
        let padded = chrome + " " + String(repeating: "x", count: 100_000)
        let garbage = String(repeating: "(a; b/1 ", count: 12_500)  // 100,000 characters
        let emoji = String(repeating: "😀", count: 100_000)
        #expect(garbage.utf8.count == 100_000)

        // Only the first maxExaminedBytes are looked at (speed is a
        // benchmark's business, not a test's).
        #expect(UserAgentInfo.parse(padded).browser == "Chrome")
        #expect(UserAgentInfo.parse(garbage).deviceType == .unknown)
        #expect(UserAgentInfo.parse(emoji).deviceType == .unknown)

        // Tokens beyond the cap are not seen.
        let late = String(repeating: "a", count: UserAgentInfo.maxExaminedBytes) + " curl/8.0"
        #expect(UserAgentInfo.parse(late).deviceType != .bot)
    }
}
