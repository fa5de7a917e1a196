import ConveyorCore
@testable import ConveyorKindHubSpot
@testable import ConveyorMeta
import Foundation
import Testing

@Suite("HubSpot signatures and Meta hashing, against published vectors")
struct SignatureAndHashingTests {
    let secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"

    @Test("HubSpot's v1 and v2 vectors from its docs")
    func v1v2() {
        let body = #"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#
        #expect(HubSpotSignature.v1(secret: secret, body: Array(body.utf8)) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de")
        #expect(
            HubSpotSignature.v2(secret: secret, method: "GET", uri: "https://www.example.com/webhook_uri", body: [])
                == "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e")
    }

    static let v3Body = #"[{"eventId":1,"subscriptionType":"deal.propertyChange","objectId":123,"propertyName":"dealstage","propertyValue":"closedwon","occurredAt":1700000000000,"attemptNumber":0}]"#

    @Test("the v3 vector of the notes; a stale, a tampered and a missing signature are refused")
    func v3() {
        let body = Array(Self.v3Body.utf8)
        let signature = HubSpotSignature.v3(
            secret: secret, method: "POST", uri: "https://www.example.com/webhook_uri", body: body, timestamp: "1700000000123")
        #expect(signature == "23nZOHOT+XG/IHa/eL75GvGBFI9ZmeS/XlmAhxJOVWw=")
        let headers = ["x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": "1700000000123"]
        func verify(_ headers: [String: String], now: TimeInterval, body: [UInt8] = body) -> HubSpotSignature.Verdict {
            HubSpotSignature.verify(
                secret: secret, method: "POST", uri: "https://www.example.com/webhook_uri", body: body, now: Date(timeIntervalSince1970: now),
                header: { headers[$0.lowercased()] })
        }
        #expect(verify(headers, now: 1_700_000_100) == .valid(version: "v3"))
        // Spaces where a framework decoded `+`.
        #expect(verify(headers.merging(["x-hubspot-signature-v3": signature.replacingOccurrences(of: "+", with: " ")]) { $1 }, now: 1_700_000_100) == .valid(version: "v3"))
        guard case .invalid = verify(headers, now: 1_700_000_000.123 + 300.5) else { Issue.record("a 5-minute-old timestamp was accepted"); return }
        guard case .invalid = verify(headers, now: 1_700_000_100, body: body + [32]) else { Issue.record("a changed body was accepted"); return }
        guard case .invalid = verify([:], now: 1_700_000_100) else { Issue.record("no signature was accepted"); return }
        // v1 only when v3 is absent: a v1 header does not rescue a bad v3.
        let v1 = HubSpotSignature.v1(secret: secret, body: body)
        #expect(verify(["x-hubspot-signature": v1, "x-hubspot-signature-version": "v1"], now: 1_700_000_100) == .valid(version: "v1"))
        guard case .invalid = verify(["x-hubspot-signature": v1, "x-hubspot-signature-v3": "AAAA", "x-hubspot-request-timestamp": "1700000000123"], now: 1_700_000_100)
        else { Issue.record("a bad v3 passed on a v1 header"); return }
    }

    @Test("v3 decodes only HubSpot's table of escapes in the URI")
    func v3Decoding() {
        #expect(HubSpotSignature.decodeV3("https://x.io/hook%3Fa%3Db%2Fc%20d%2a") == "https://x.io/hook?a%3Db/c%20d*")
    }

    @Test("Meta's hash vectors and its SDK's normalisation")
    func hashing() {
        #expect(UserDataHashing.hash("  Person@Example.com ", as: .em) == "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345")
        #expect(UserDataHashing.normalize("+44 844 412 4653", as: .ph) == "448444124653")
        #expect(UserDataHashing.hash("+44 844 412 4653", as: .ph) == "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383")
        #expect(UserDataHashing.normalize("(0044) 844-412-4653", as: .ph) == "448444124653")
        #expect(UserDataHashing.normalize("not-an-email", as: .em) == nil)
        #expect(UserDataHashing.normalize("000 844 412 4653", as: .ph) == nil)
        #expect(UserDataHashing.normalize("San Francisco 2", as: .ct) == "sanfrancisco")
        #expect(UserDataHashing.normalize("94035-1234", as: .zp) == "94035")
        #expect(UserDataHashing.normalize("US", as: .country) == "us")
        #expect(UserDataHashing.normalize("USA", as: .country) == nil)
        let hashed = UserDataHashing.sha256Hex("x")
        #expect(UserDataHashing.hash(hashed.uppercased(), as: .em) == hashed)
    }

    @Test("the dedupe key ignores eventId and attemptNumber; both type spellings give one key; events are stored as sent")
    func dedupe() throws {
        let a = #"{"eventId":1,"attemptNumber":0,"portalId":62515,"subscriptionType":"deal.propertyChange","objectId":42,"propertyName":"dealstage","propertyValue":"closedwon","occurredAt":1700000000000}"#
        let b = #"{"eventId":99,"attemptNumber":3,"portalId":62515,"eventType":"deal.propertyChange","objectId":42,"propertyName":"dealstage","propertyValue":"closedwon","occurredAt":1700000000000}"#
        let c = #"{"eventId":1,"attemptNumber":0,"portalId":62515,"subscriptionType":"deal.propertyChange","objectId":42,"propertyName":"dealstage","propertyValue":"closedwon","occurredAt":1700000000001}"#
        let events = try HubSpotReceiver.events(Array("[\(a), \(b),\n\(c)]".utf8))
        #expect(events.map(\.text) == [a, b, c], "each event's exact text")
        let keys = events.map { HubSpotReceiver.dedupeKey($0.fields) }
        #expect(keys[0] == keys[1] && keys[0] != keys[2])
        #expect(keys[0] == "62515|deal.propertyChange|42|dealstage|closedwon|1700000000000")
        #expect(HubSpotReceiver.job(events[0].fields, text: a).id == HubSpotReceiver.job(events[1].fields, text: b).id)
        #expect(throws: HubSpotReceiver.BadDelivery.self) { try HubSpotReceiver.events(Array(#"{"a":1}"#.utf8)) }
        #expect(throws: HubSpotReceiver.BadDelivery.self) { try HubSpotReceiver.events(Array("[1]".utf8)) }
        #expect(throws: HubSpotReceiver.BadDelivery.self) { try HubSpotReceiver.events(Array("<html>".utf8)) }
        #expect(try HubSpotReceiver.events(Array("[]".utf8)).isEmpty)
    }

    @Test("appsecret_proof is the token's HMAC-SHA256 keyed by the app secret, hex")
    func proof() {
        // Python: hmac.new(b"secret", b"token", hashlib.sha256).hexdigest()
        #expect(AppSecretProof.make(token: "token", appSecret: "secret") == "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a")
    }
}
