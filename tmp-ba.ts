import Aerospike from 'aerospike';
(async () => {
  const c = await Aerospike.connect({ hosts: `127.0.0.1:${process.argv[2]}` });
  await (await c.udfRegister('node_modules/aerospike/test/udf.lua')).wait(10);
  const keys = [1, 2, 3].map((i) => new Aerospike.Key('test', 'demo', 'test/batch_apply/' + i));
  await c.put(keys[0], { a: 1 });
  const b64 = c.expressionToBase64(Aerospike.exp.eq(Aerospike.exp.int(2), Aerospike.exp.int(1)));
  const udf = { module: 'udf', funcname: 'withArguments', args: [[1, 2, 3]] };
  try { console.log(JSON.stringify(await c.batchApply(keys, udf, new Aerospike.BatchPolicy({ filterExpression: b64 } as any)))); } catch (e) { console.log('bp', (e as any).code, e); }
  try { console.log(JSON.stringify(await c.batchApply(keys, udf, null as any, new Aerospike.BatchApplyPolicy({ filterExpression: b64 } as any)))); } catch (e) { console.log('bap', (e as any).code, e); }
  await c.close();
})();
