// Calls the simulator's REST API with SignalWire's own Node client library, as an application would.
// usage: node compat_client.js HOST:PORT PROJECT TOKEN stop CALL_SID STREAM_SID
//        node compat_client.js HOST:PORT PROJECT TOKEN start CALL_SID URL NAME
// Prints the stream resource the library returns, as JSON. TLS trust comes from NODE_EXTRA_CA_CERTS.
const { RestClient } = require('@signalwire/compatibility-api');

async function main() {
  const [host, project, token, verb, callSid, arg, name] = process.argv.slice(2);
  const client = RestClient(project, token, { signalwireSpaceUrl: host });
  let stream;
  if (verb === 'stop') {
    stream = await client.calls(callSid).streams(arg).update({ status: 'stopped' });
  } else {
    stream = await client.calls(callSid).streams.create({ url: arg, name, track: 'both_tracks' });
  }
  console.log(JSON.stringify({
    sid: stream.sid, accountSid: stream.accountSid, callSid: stream.callSid, name: stream.name,
    status: stream.status, dateUpdated: stream.dateUpdated, uri: stream.uri,
  }));
}

main().catch((err) => {
  console.log(JSON.stringify({ error: String(err), status: err.status, code: err.code }));
  process.exit(1);
});
