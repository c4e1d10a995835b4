export * from '../wire/convert'; // TEMPORARY: removed once bench/micro.ts imports wire/convert
