import MoatCore
import MoatProto
import MoatRPC
import Foundation

/// `moat.v1.Events`: the durable event stream, for administrator callers
/// (the generated method table refuses everyone else).
struct EventsHandler: Moat_V1_EventsService {
    let events: EventStream

    func poll(request: Moat_V1_PollRequest, context: RequestContext) async throws -> Moat_V1_PollResponse {
        let batch = try await events.poll(
            consumer: request.consumer, maxEvents: Int(request.maxEvents),
            waitMilliseconds: Int64(request.waitMs), typePrefix: request.typePrefix, tenant: request.tenant,
            budget: context.deadline - ContinuousClock.now)
        return .with {
            $0.events = batch.events.map(Moat_V1_Event.init)
            $0.lastSequenceScanned = batch.lastSequenceScanned
            $0.cursor = batch.cursor
        }
    }

    func ack(request: Moat_V1_AckRequest, context: RequestContext) async throws -> Moat_V1_AckResponse {
        let cursor = try await events.ack(consumer: request.consumer, sequence: request.sequence)
        return .with { $0.cursor = cursor }
    }

    func listConsumers(request: Moat_V1_ListConsumersRequest, context: RequestContext) async throws
        -> Moat_V1_ListConsumersResponse
    {
        let (consumers, newest) = try await events.consumers()
        return .with {
            $0.newestSequence = newest
            $0.consumers = consumers.map { status in
                .with {
                    $0.name = status.consumer.name
                    $0.cursor = status.consumer.cursor
                    $0.lag = status.lag
                    $0.createdAtUnix = status.consumer.createdAt.seconds
                    $0.lastPollAtUnix = status.consumer.lastPolledAt?.seconds ?? 0
                    $0.lastAckAtUnix = status.consumer.lastAckedAt?.seconds ?? 0
                }
            }
        }
    }

    func deleteConsumer(request: Moat_V1_DeleteConsumerRequest, context: RequestContext) async throws
        -> Moat_V1_DeleteConsumerResponse
    {
        try await events.deleteConsumer(request.consumer)
        return Moat_V1_DeleteConsumerResponse()
    }
}

extension Moat_V1_Event {
    init(_ record: EventRecord) {
        self.init()
        sequence = record.sequence
        tenantID = record.tenantID.rawValue
        type = record.type
        subject = record.subject
        createdAtUnixMs = record.createdAt.milliseconds
        payloadType = EventPayloadTypes.name(forEventType: record.type)
        payload = Data(record.payload)
    }
}
